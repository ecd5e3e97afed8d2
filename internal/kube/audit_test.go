package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers every request with an empty Pod and a fresh
// Audit-Id, "audit-1", "audit-2", …, and counts the requests.
func fakeAPIServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := n.Add(1)
		w.Header().Set(AuditIDHeader, "audit-"+strconv.FormatInt(id, 10))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestAuditIDTransport(t *testing.T) {
	t.Parallel()
	srv, _ := fakeAPIServer(t)
	var outer atomic.Int64
	cfg := &rest.Config{Host: srv.URL}
	// A wrapper already there (an auth plugin, a debug transport) must keep
	// running: Wrap chains, it does not replace.
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			outer.Add(1)
			return rt.RoundTrip(r)
		})
	}
	cfg.Wrap(AuditIDTransport)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	ctx, auditID := CaptureAuditID(t.Context())
	if got := auditID(); got != "" {
		t.Errorf("before any request: audit ID %q, want empty", got)
	}
	if _, err := client.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := auditID(); got != "audit-1" {
		t.Errorf("after the first request: audit ID %q, want audit-1", got)
	}
	if _, err := client.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := auditID(); got != "audit-2" {
		t.Errorf("after the second request: audit ID %q, want the last one, audit-2", got)
	}

	// A request without a capture slot records nothing anywhere.
	if _, err := client.CoreV1().Pods("ns").Get(t.Context(), "p", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := auditID(); got != "audit-2" {
		t.Errorf("a request outside the captured context changed the audit ID to %q", got)
	}
	if got := outer.Load(); got != 3 {
		t.Errorf("the pre-existing wrapper saw %d requests, want 3", got)
	}
}

func TestAuditIDTransportConcurrentSlots(t *testing.T) {
	t.Parallel()
	srv, n := fakeAPIServer(t)
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(AuditIDTransport)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const workers = 16
	ids := make([]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			ctx, auditID := CaptureAuditID(t.Context())
			if _, err := client.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{}); err != nil {
				t.Error(err)
			}
			ids[i] = auditID()
		})
	}
	wg.Wait()
	// Each slot holds the ID of its own request: all distinct, none empty.
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Errorf("audit IDs %v: want %d distinct non-empty IDs", ids, workers)
			break
		}
		seen[id] = true
	}
	if n.Load() != workers {
		t.Errorf("%d requests, want %d", n.Load(), workers)
	}
}

func TestAuditIDTransportNoHeaderKeepsSlotEmpty(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	rt := AuditIDTransport(http.DefaultTransport)
	ctx, auditID := CaptureAuditID(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := auditID(); got != "" {
		t.Errorf("audit ID %q from a response without the header, want empty", got)
	}
}

func TestNewInstallsAuditIDTransport(t *testing.T) {
	t.Parallel()
	srv, _ := fakeAPIServer(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: ns}}]
current-context: c
`, srv.URL)
	if err := os.WriteFile(kubeconfig, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx, auditID := CaptureAuditID(t.Context())
	if _, err := c.Interface.CoreV1().Pods(c.Namespace).Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := auditID(); got != "audit-1" {
		t.Errorf("audit ID %q through kube.New's client, want audit-1", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
