package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kir.dev/kir/falco"
	"kir.dev/kir/serve"
)

// TestAuthRefusedBeforeBody: a request without valid credentials gets a
// 401 and its body is never read. The client sends "Expect:
// 100-continue" and waits for the server's 100 before sending the body;
// Go's server sends it only when the handler first reads the body. So
// the body's reader is read if and only if the handler read the body —
// which the valid token's case shows can happen.
func TestAuthRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, receiverOpts{})
	body := unrouted(t, "uuid-before-body")
	tests := []struct {
		name          string
		authorization string
		want          int
		wantRead      bool
	}{
		{name: "no Authorization", want: http.StatusUnauthorized},
		{name: "wrong token", authorization: "Bearer not-the-token-0123456789", want: http.StatusUnauthorized},
		{name: "token with a suffix", authorization: "Bearer " + token + "x", want: http.StatusUnauthorized},
		{name: "Basic", authorization: "Basic " + token, want: http.StatusUnauthorized},
		{name: "valid token reads the body", authorization: "Bearer " + token, want: http.StatusAccepted, wantRead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adds, refused := r.stats().Adds, metric(t, r.URL, `kir_alerts_rejected_total{reason="unauthorized"}`)
			rec := &readRecorder{r: bytes.NewReader(body)}
			req, err := http.NewRequest(http.MethodPost, r.URL+"/falco", rec)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(body))
			req.Header.Set("Expect", "100-continue")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			// A long wait for the 100: on a timeout the client would send
			// the body anyway and the test would prove nothing.
			tr := &http.Transport{ExpectContinueTimeout: time.Minute}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if got := rec.read.Load(); got != tt.wantRead {
				t.Errorf("body read: %v, want %v", got, tt.wantRead)
			}
			if tt.want == http.StatusAccepted {
				return
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
			}
			if got := r.stats().Adds; got != adds {
				t.Errorf("spool adds %d → %d: a refused alert was stored", adds, got)
			}
			if got := metric(t, r.URL, `kir_alerts_rejected_total{reason="unauthorized"}`); got != refused+1 {
				t.Errorf("unauthorized rejections %v → %v, want one more", refused, got)
			}
		})
	}
}

// readRecorder is a request body that records whether it was read.
type readRecorder struct {
	r    io.Reader
	read atomic.Bool
}

func (b *readRecorder) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

// TestAuthEmptyToken: a server whose token is empty (and which has no
// client CAs) is refused outright: it would accept an empty bearer.
func TestAuthEmptyToken(t *testing.T) {
	t.Parallel()
	for _, tok := range [][]byte{nil, {}} {
		if err := serve.Run(t.Context(), serve.Options{Auth: &serve.Auth{Token: tok}}); err == nil || !strings.Contains(err.Error(), "needs a bearer token") {
			t.Errorf("token %q: Run gave %v, want a refusal", tok, err)
		}
	}
}

// TestIntakeStatus: what the intake answers to each kind of request, and
// that nothing it refuses is stored.
func TestIntakeStatus(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, receiverOpts{})
	valid := unrouted(t, "uuid-status")
	tests := []struct {
		name         string
		method, path string
		body         []byte
		want         int
		reason       string // the rejection counted; "" for a 202
		wantAllow    string
	}{
		{name: "202 at /falco", method: "POST", path: "/falco", body: valid, want: 202},
		{name: "202 at /", method: "POST", path: "/", body: valid, want: 202},
		{name: "413 for 2 MiB", method: "POST", path: "/falco", body: bytes.Repeat([]byte("x"), 2<<20), want: 413, reason: "too-large"},
		{name: "413 for a 2 MiB valid JSON alert", method: "POST", path: "/falco", body: padded(t, valid, 2<<20), want: 413, reason: "too-large"},
		{name: "400 for malformed JSON", method: "POST", path: "/falco", body: []byte(`{"rule": "x",`), want: 400, reason: "malformed"},
		{name: "400 for an empty body", method: "POST", path: "/falco", want: 400, reason: "malformed"},
		{name: "400 for {}", method: "POST", path: "/falco", body: []byte(`{}`), want: 400, reason: "malformed"},
		{name: "400 for []", method: "POST", path: "/falco", body: []byte(`[]`), want: 400, reason: "malformed"},
		{name: "400 for a list of alerts", method: "POST", path: "/falco", body: append(append([]byte("["), valid...), ']'), want: 400, reason: "malformed"},
		{name: "400 for an unknown priority", method: "POST", path: "/falco", body: bytes.Replace(valid, []byte(`"Notice"`), []byte(`"Dire"`), 1), want: 400, reason: "malformed"},
		{name: "405 for GET /falco", method: "GET", path: "/falco", want: 405, reason: "method", wantAllow: "POST"},
		{name: "405 for PUT /", method: "PUT", path: "/", body: valid, want: 405, reason: "method", wantAllow: "POST"},
		{name: "404 for POST /other", method: "POST", path: "/other", body: valid, want: 404, reason: "path"},
		{name: "404 for POST /falco/", method: "POST", path: "/falco/", body: valid, want: 404, reason: "path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adds := r.stats().Adds
			series := `kir_alerts_rejected_total{reason="` + tt.reason + `"}`
			rejected := metric(t, r.URL, series)
			resp, body := send(t, http.DefaultClient, tt.method, r.URL+tt.path, tt.body, bearer(token))
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.want, body)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
			wantAdds := adds
			if tt.want == http.StatusAccepted {
				wantAdds++
			}
			if got := r.stats().Adds; got != wantAdds {
				t.Errorf("spool adds %d → %d, want %d", adds, got, wantAdds)
			}
			if tt.reason == "" {
				return
			}
			if got := metric(t, r.URL, series); got != rejected+1 {
				t.Errorf("%s %v → %v, want one more", series, rejected, got)
			}
		})
	}
}

// padded is a JSON alert of at least size bytes: a long output field.
func padded(t *testing.T, alert []byte, size int) []byte {
	t.Helper()
	return bytes.Replace(alert, []byte(`"output":"`), append([]byte(`"output":"`), bytes.Repeat([]byte("a"), size)...), 1)
}

// TestHMAC: with a token and an HMAC secret, an alert needs both, a fresh
// timestamp, a signature over exactly the body it carries, and a
// signature not seen before. The cases run in order: the replays replay
// the first.
func TestHMAC(t *testing.T) {
	t.Parallel()
	secret := []byte("hmac-secret-0123456789abcdef")
	r := newReceiver(t, receiverOpts{auth: &serve.Auth{Token: []byte(token), HMACSecret: secret}})
	body := unrouted(t, "uuid-hmac")
	now := strconv.FormatInt(time.Now().Unix(), 10)
	sign := func(ts string, b []byte) http.Header {
		h := bearer(token)
		h.Set(serve.HeaderTimestamp, ts)
		h.Set(serve.HeaderSignature, signature(secret, ts, b))
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	in := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }
	other := unrouted(t, "uuid-hmac-other")
	tests := []struct {
		name   string
		body   []byte
		header http.Header
		want   int
	}{
		{name: "valid", body: body, header: sign(now, body), want: 202},
		{name: "replayed", body: body, header: sign(now, body), want: 401},
		{name: "replayed in upper case", body: body, header: with(sign(now, body), serve.HeaderSignature, "sha256="+strings.ToUpper(strings.TrimPrefix(signature(secret, now, body), "sha256="))), want: 401},
		{name: "timestamp 10 minutes old", body: other, header: sign(in(-10*time.Minute), other), want: 401},
		{name: "timestamp 10 minutes ahead", body: other, header: sign(in(10*time.Minute), other), want: 401},
		{name: "body altered after signing", body: bytes.Replace(other, []byte("Notice"), []byte("Warning"), 1), header: sign(now, other), want: 401},
		{name: "signed with another secret", body: other, header: with(sign(now, other), serve.HeaderSignature, signature([]byte("another-secret-0123456789"), now, other)), want: 401},
		{name: "signature without sha256=", body: other, header: with(sign(now, other), serve.HeaderSignature, strings.TrimPrefix(signature(secret, now, other), "sha256=")), want: 401},
		{name: "timestamp not Unix seconds", body: other, header: sign(time.Now().Format(time.RFC3339), other), want: 401},
		{name: "no signature", body: other, header: with(sign(now, other), serve.HeaderSignature, ""), want: 401},
		{name: "no timestamp", body: other, header: with(sign(now, other), serve.HeaderTimestamp, ""), want: 401},
		{name: "no headers", body: other, header: bearer(token), want: 401},
		{name: "signed without the token", body: other, header: with(sign(now, other), "Authorization", ""), want: 401},
		{name: "another alert, valid", body: other, header: sign(now, other), want: 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adds := r.stats().Adds
			resp, out := send(t, http.DefaultClient, http.MethodPost, r.URL+"/falco", tt.body, tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.want, out)
			}
			wantAdds := adds
			if tt.want == http.StatusAccepted {
				wantAdds++
			}
			if got := r.stats().Adds; got != wantAdds {
				t.Errorf("spool adds %d → %d, want %d", adds, got, wantAdds)
			}
		})
	}
}

func signature(secret []byte, ts string, body []byte) string {
	return "sha256=" + hex.EncodeToString(serve.Sign(secret, ts, body))
}

// TestTLSClientCert: over TLS (serve.TLSConfig), with client CAs and no
// token, a verified client certificate is the credential; without one
// the request is refused, and with requireCert it never gets past the
// handshake; a certificate from another authority never does; nor does
// a client below TLS 1.2.
func TestTLSClientCert(t *testing.T) {
	t.Parallel()
	ca, rogue := newCA(t, "kir test CA"), newCA(t, "rogue CA")
	dir := t.TempDir()
	certFile, keyFile := ca.issueFiles(t, dir, "kir-serve", x509.ExtKeyUsageServerAuth)
	client := ca.issue(t, "falcosidekick", x509.ExtKeyUsageClientAuth)
	rogueClient := rogue.issue(t, "falcosidekick", x509.ExtKeyUsageClientAuth)

	type clientCase struct {
		name       string
		cert       *tls.Certificate
		maxVersion uint16
		want       int    // 0: the handshake fails,
		alert      string // with this alert from the server
	}
	tests := []struct {
		name        string
		requireCert bool
		clients     []clientCase
	}{
		{name: "certificate if given", clients: []clientCase{
			{name: "with the certificate", cert: &client, want: 202},
			{name: "without a certificate", want: 401},
			{name: "with another authority's certificate", cert: &rogueClient, alert: "unknown certificate authority"},
			{name: "TLS 1.2", cert: &client, maxVersion: tls.VersionTLS12, want: 202},
			{name: "TLS 1.1", cert: &client, maxVersion: tls.VersionTLS11, alert: "protocol version not supported"},
		}},
		{name: "certificate required", requireCert: true, clients: []clientCase{
			{name: "with the certificate", cert: &client, want: 202},
			{name: "without a certificate", alert: "certificate required"},
			{name: "with another authority's certificate", cert: &rogueClient, alert: "unknown certificate authority"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t, receiverOpts{auth: &serve.Auth{ClientCAs: ca.pool}})
			cfg, err := serve.TLSConfig(certFile, keyFile, ca.pool, tt.requireCert)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewUnstartedServer(r.srv.Handler())
			ts.TLS = cfg
			ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
			ts.StartTLS()
			t.Cleanup(ts.Close)
			for i, c := range tt.clients {
				t.Run(c.name, func(t *testing.T) {
					adds := r.stats().Adds
					tc := &tls.Config{RootCAs: ca.pool, MaxVersion: c.maxVersion}
					if c.maxVersion != 0 && c.maxVersion < tls.VersionTLS12 {
						tc.MinVersion = tls.VersionTLS10 // the client would offer it; the server must refuse
					}
					if c.cert != nil {
						// Sent whatever authorities the server names: Go's
						// client would keep a foreign certificate to itself.
						tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.cert, nil }
					}
					if c.want == 0 {
						// Dial and read: in TLS 1.3 the server checks the
						// client's certificate after the client's side of
						// the handshake is done, so its alert arrives on
						// the first read (an HTTP client may instead be
						// mid-write and see only a broken pipe).
						conn, err := tls.Dial("tcp", ts.Listener.Addr().String(), tc)
						if err == nil {
							conn.SetReadDeadline(time.Now().Add(10 * time.Second))
							_, err = conn.Read(make([]byte, 1))
							conn.Close()
						}
						if want := "remote error: tls: " + c.alert; err == nil || !strings.Contains(err.Error(), want) {
							t.Errorf("error %v, want %q", err, want)
						}
					} else {
						tr := &http.Transport{TLSClientConfig: tc}
						defer tr.CloseIdleConnections()
						resp, err := (&http.Client{Transport: tr}).Post(ts.URL+"/falco", "application/json",
							bytes.NewReader(unrouted(t, "uuid-tls-"+strconv.Itoa(i))))
						if err != nil {
							t.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != c.want {
							t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
						}
					}
					wantAdds := adds
					if c.want == http.StatusAccepted {
						wantAdds++
					}
					if got := r.stats().Adds; got != wantAdds {
						t.Errorf("spool adds %d → %d, want %d", adds, got, wantAdds)
					}
				})
			}
		})
	}
}

// TestTLSConfig: requiring a client certificate without authorities to
// verify it is refused, rather than quietly requiring nothing.
func TestTLSConfig(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "kir test CA")
	certFile, keyFile := ca.issueFiles(t, t.TempDir(), "kir-serve", x509.ExtKeyUsageServerAuth)
	if _, err := serve.TLSConfig(certFile, keyFile, nil, true); err == nil {
		t.Error("requireCert without client CAs: no error")
	}
	cfg, err := serve.TLSConfig(certFile, keyFile, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("MinVersion %x, ClientAuth %v; want TLS 1.2 and no client certificates", cfg.MinVersion, cfg.ClientAuth)
	}
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issuePEM returns a certificate for 127.0.0.1 and its key, PEM-encoded.
func (ca *testCA) issuePEM(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(ca.issuePEM(t, name, usage))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (ca *testCA) issueFiles(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.issuePEM(t, name, usage)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeTestFile(t, certFile, certPEM)
	writeTestFile(t, keyFile, keyPEM)
	return certFile, keyFile
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIntakeSurvivesGarbage: a thousand bodies of random bytes (and a few
// chosen to hurt a parser) with a valid token all get a 400, nothing is
// stored, and the server still accepts a valid alert afterwards.
func TestIntakeSurvivesGarbage(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, receiverOpts{})
	rng := mrand.New(mrand.NewPCG(1, 2)) // fixed: a failure reproduces
	var bodies [][]byte
	for range 1000 {
		b := make([]byte, 1+rng.IntN(2048))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		bodies = append(bodies, b)
	}
	bodies = append(bodies,
		bytes.Repeat([]byte("["), 100_000),
		append(bytes.Repeat([]byte(`{"a":`), 50_000), '1'),
		[]byte("{\"rule\":\"x\xff\xfe\",\"priority\":\"Critical\"}\x00"),
		[]byte(`{"rule":"x","priority":"Critical","tags":"not-a-list"}`),
		[]byte(`{"rule":"x","priority":"Critical","time":"yesterday"}`),
		[]byte(`{"rule":1e999999,"priority":"Critical"}`),
		[]byte(`null`), []byte(`"alert"`), []byte(`42`),
	)
	adds := r.stats().Adds
	for i, b := range bodies {
		resp, out := send(t, http.DefaultClient, http.MethodPost, r.URL+"/falco", b, bearer(token))
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("body %d (%q…): status %d, want 400 (%s)", i, b[:min(len(b), 40)], resp.StatusCode, out)
		}
	}
	if got := r.stats().Adds; got != adds {
		t.Errorf("%d garbage bodies stored", got-adds)
	}
	if got := metric(t, r.URL, `kir_alerts_rejected_total{reason="panic"}`); got != 0 {
		t.Errorf("%v panics", got)
	}
	if code, out := r.post(t, unrouted(t, "uuid-after-garbage")); code != http.StatusAccepted {
		t.Fatalf("valid alert after the garbage: %d %s", code, out)
	}
}

// TestIntakeRecoversPanic: a panic while serving one request (here from
// the server's clock, which the intake reads first) is that request's
// 500, counted; the server goes on serving.
func TestIntakeRecoversPanic(t *testing.T) {
	t.Parallel()
	var panicNext atomic.Bool
	now := func() time.Time {
		if panicNext.CompareAndSwap(true, false) {
			panic("clock failure")
		}
		return time.Now()
	}
	srv := newServer(t, serve.Options{Auth: &serve.Auth{Token: []byte(token)}, Now: now})
	srv.Start(t.Context())
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	panicNext.Store(true)
	resp, out := send(t, http.DefaultClient, http.MethodPost, ts.URL+"/falco", unrouted(t, "uuid-panic"), bearer(token))
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500 (%s)", resp.StatusCode, out)
	}
	if got := metric(t, ts.URL, `kir_alerts_rejected_total{reason="panic"}`); got != 1 {
		t.Errorf("panics counted: %v, want 1", got)
	}
	if n := srv.SpoolStats().Adds; n != 0 {
		t.Errorf("%d alerts stored by the request that panicked", n)
	}
	resp, out = send(t, http.DefaultClient, http.MethodPost, ts.URL+"/falco", unrouted(t, "uuid-after-panic"), bearer(token))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the panic: status %d, want 202 (%s)", resp.StatusCode, out)
	}
}

// TestHealthReady: /healthz answers at once, /readyz only once Start has
// resumed what the spool kept, and neither needs credentials.
func TestHealthReady(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serve.Options{Auth: &serve.Auth{Token: []byte(token)}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	get := func(path string) int {
		resp, _ := send(t, http.DefaultClient, http.MethodGet, ts.URL+path, nil, nil)
		return resp.StatusCode
	}
	if code := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz before Start: %d, want 200", code)
	}
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Start: %d, want 503", code)
	}
	srv.Start(t.Context())
	waitFor(t, 5*time.Second, func() bool { return get("/readyz") == http.StatusOK })
	if code := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after Start: %d, want 200", code)
	}
}

// TestMetrics: /metrics counts what was received, accepted and refused,
// by reason.
func TestMetrics(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, receiverOpts{})
	if code, out := r.post(t, unrouted(t, "uuid-metrics")); code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, out)
	}
	for _, h := range []http.Header{nil, bearer("wrong-token-0123456789")} {
		if resp, _ := send(t, http.DefaultClient, http.MethodPost, r.URL+"/falco", unrouted(t, "uuid-refused"), h); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	resp, text := send(t, http.DefaultClient, http.MethodGet, r.URL+"/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, name := range []string{"kir_alerts_received_total", "kir_alerts_accepted_total", "kir_alerts_rejected_total", "kir_alert_accept_seconds", "go_goroutines"} {
		if !strings.Contains(text, "# TYPE "+name+" ") {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for series, want := range map[string]float64{
		"kir_alerts_received_total":                        3,
		"kir_alerts_accepted_total":                        1,
		"kir_alerts_unrouted_total":                        1,
		`kir_alerts_rejected_total{reason="unauthorized"}`: 2,
		"kir_alert_accept_seconds_count":                   1,
	} {
		if got := metric(t, r.URL, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// newServer is a Server on a fresh state directory, for the tests that
// set Options newReceiver does not (Now) or must see it before Start.
// Start it with t.Context(): the cleanup waits for its workers.
func newServer(t *testing.T, o serve.Options) *serve.Server {
	t.Helper()
	state := t.TempDir()
	o.Routing, o.Library, o.SpoolDir = falco.DefaultConfig(), library(t), filepath.Join(state, "spool")
	o.Engine = newEngine(t, state)
	o.Log = slog.New(slog.DiscardHandler)
	srv, err := serve.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Wait() // t.Context() is done by now
		srv.Close()
	})
	return srv
}

// unrouted is a valid Falcosidekick alert that no routing rule acts on (a
// Notice): what the intake tests post, so that no playbook runs.
func unrouted(t testing.TB, uuid string) []byte {
	t.Helper()
	b := alert(t, "default", "no-such-pod", uuid)
	out := bytes.Replace(b, []byte(`"priority":"Critical"`), []byte(`"priority":"Notice"`), 1)
	if bytes.Equal(out, b) {
		t.Fatal("the test alert has no Critical priority to lower")
	}
	return out
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// send makes one request and returns the response, its body read.
func send(t testing.TB, c *http.Client, method, url string, body []byte, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// metric is the value of one series (name and labels as /metrics prints
// them) on the server at baseURL; 0 when absent, as a counter not yet
// incremented is.
func metric(t testing.TB, baseURL, series string) float64 {
	t.Helper()
	_, text := send(t, http.DefaultClient, http.MethodGet, baseURL+"/metrics", nil, nil)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %v", series, err)
		}
		return f
	}
	return 0
}
