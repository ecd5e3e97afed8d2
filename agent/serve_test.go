package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

// A pod of the node reaches the capture server: connections it opens by
// the thousand must wait for one another, not pile up in the agent.
func TestLimitListenerBoundsOneAddress(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 8, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range 2 {
		dial()
		held = append(held, <-accepted)
	}
	// A third from the same address is closed at once.
	third := dial()
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a third connection from one address: read %v, want it closed by the server", err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a third connection from one address was accepted: %v", c.RemoteAddr())
	default:
	}
	// Once one closes, the address may connect again.
	held[0].Close()
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a connection after one closed was never accepted")
	}
	held[1].Close()
}

// A request without a key of kir's shape is refused before the agent asks
// the API server anything (Kube is nil here: asking would panic).
func TestAuthorizeRefusesMalformedKeysWithoutTheAPI(t *testing.T) {
	t.Parallel()
	a := &Agent{}
	for _, key := range []string{"", "x", strings.Repeat("a", 63), strings.Repeat("a", 65)} {
		if err := a.authorize(context.Background(), Manifest{Namespace: "ns"}, "uid-1", key); err == nil {
			t.Errorf("key %q: authorized", key)
		}
	}
}

// The capture server, against the real API server: the key whose hash is
// on the pod's quarantine policy reads the files the manifest lists, and
// nothing else reads anything — another key, a key on a policy that is
// not the pod's, a name the manifest does not list or that walks out of
// the capture, a capture not sealed yet.
func TestServeCaptureAuthorizesAgainstThePolicy(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	q := action.QuarantineValue(w.pod.UID)
	key, other := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	sum := sha256.Sum256([]byte(key))
	w.quarantine(t, q, true, map[string]string{action.AnnotationCaptureKey: hex.EncodeToString(sum[:])})
	// A policy of kir's name for a second quarantine that selects the
	// first: not that quarantine's policy.
	forged := "forged-" + q[:8]
	osum := sha256.Sum256([]byte(other))
	pol := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: action.PolicyName(forged), Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir},
			Annotations: map[string]string{action.AnnotationCaptureKey: hex.EncodeToString(osum[:])}},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{action.LabelQuarantine: q}}},
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(w.pod.Namespace).Create(t.Context(), pol, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	m := Manifest{Namespace: w.pod.Namespace, Pod: w.pod.Name, UID: string(w.pod.UID)}
	c, err := newCapture(root, q, "id-1", m, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.writeJSON("processes.json", map[string]string{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "sockets.json"), []byte("unlisted"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.seal(); err != nil {
		t.Fatal(err)
	}
	fc, err := newCapture(root, forged, "id-1", m, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := newCapture(root, q, "id-2", m, 1<<20); err != nil { // being taken
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{Kube: cluster.Client, CaptureDir: root, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}}
	srv := httptest.NewServer(http.HandlerFunc(a.serveCapture))
	defer srv.Close()

	for _, tc := range []struct {
		path, key string
		want      int
	}{
		{CapturePath(q, "id-1", "processes.json"), key, http.StatusOK},
		{CapturePath(q, "id-1", ManifestName), key, http.StatusOK},
		{CapturePath(q, "id-1", "processes.json"), other, http.StatusForbidden},
		{CapturePath(q, "id-1", "processes.json"), "", http.StatusForbidden},
		{CapturePath(forged, "id-1", ManifestName), other, http.StatusForbidden},
		{CapturePath(q, "id-1", "sockets.json"), key, http.StatusNotFound},
		{CapturePath(q, "id-1", "exe/../processes.json"), key, http.StatusNotFound},
		{CapturePath(q, "id-1", "../id-1/processes.json"), key, http.StatusNotFound},
		{"/v1/captures/" + q + "/id-1/%2e%2e/%2e%2e/" + forged + "/id-1/capture.json", key, http.StatusNotFound},
		{CapturePath(q, "id-2", ManifestName), key, http.StatusNotFound},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(HeaderCaptureKey, tc.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with key %.4s…: %d %q, want %d", tc.path, tc.key, resp.StatusCode, body, tc.want)
		}
		if tc.key != "" && strings.Contains(string(body), tc.key) {
			t.Errorf("GET %s: the answer holds the key", tc.path)
		}
		if resp.StatusCode == http.StatusOK {
			got := sha256.Sum256(body)
			if hex.EncodeToString(got[:]) != resp.Header.Get(HeaderSHA256) {
				t.Errorf("GET %s: body hashes %x, header says %s", tc.path, got, resp.Header.Get(HeaderSHA256))
			}
		}
	}
}

// The capture server speaks HTTP/1.1 only: one request at a time per
// connection, so the connection bounds bound the requests too.
func TestCaptureServerRefusesHTTP2(t *testing.T) {
	t.Parallel()
	cert, err := selfSigned("n1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := captureServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), cert)
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Fatalf("protocol %s, want HTTP/1.1", resp.Proto)
	}
}
