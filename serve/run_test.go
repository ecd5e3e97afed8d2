package serve_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kir.dev/kir/action"
	"kir.dev/kir/falco"
	"kir.dev/kir/internal/spool"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/serve"
)

// TestRunDrainsOnShutdown: Run serves until its context ends; a run in
// progress then finishes (it is not interrupted), Run returns nil, and the
// alert is recorded as handled in the spool: the next start has nothing
// to resume. The caller's engine is left as it was.
func TestRunDrainsOnShutdown(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	pod := w.pods[0]
	state := t.TempDir()
	o := runOptions(t, state)
	url := "http://" + o.Listen
	stop := startRun(t, o, url, nil)

	if code, body := postTo(t, url, alert(t, w.ns, pod.Name, "uuid-run")); code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, body)
	}
	// Stop once the run has started (its journal exists).
	waitFor(t, 10*time.Second, func() bool { return len(runsIn(t, state)) == 1 })
	if err := stop(); err != nil {
		t.Fatalf("stopping Run: %v", err)
	}
	waitIsolated(t, pod, time.Second) // before Run returned
	runs := runsIn(t, state)
	if len(runs) != 1 || runs[0].Status != playbooks.RunSucceeded {
		t.Fatalf("runs %+v, want one succeeded: drained, not interrupted", runs)
	}
	sp, pending, err := spool.Open(o.SpoolDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if len(pending) != 0 {
		t.Errorf("%d alerts left in the spool, want none", len(pending))
	}
	if o.Engine.Gate != nil {
		t.Error("Run set the caller's engine's Gate")
	}
}

// TestRunTLS: with Options.TLS, Run speaks HTTPS only.
func TestRunTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "kir test CA")
	certFile, keyFile := ca.issueFiles(t, t.TempDir(), "kir-serve", x509.ExtKeyUsageServerAuth)
	o := runOptions(t, t.TempDir())
	var err error
	if o.TLS, err = serve.TLSConfig(certFile, keyFile, nil, false); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	startRun(t, o, "https://"+o.Listen, client)
	if resp, _ := send(t, http.DefaultClient, http.MethodGet, "http://"+o.Listen+"/healthz", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS server: %d, want 400", resp.StatusCode)
	}
}

// runOptions are the options of a kir serve on state, on a free loopback
// port, acting on the test cluster.
func runOptions(t *testing.T, state string) serve.Options {
	t.Helper()
	return serve.Options{
		Listen: freeAddr(t), Auth: &serve.Auth{Token: []byte(token)},
		Routing: falco.DefaultConfig(), Library: library(t), Engine: newEngine(t, state),
		Env:      action.Env{Kube: cluster.Client, Actor: "kubetest-admin", Version: "test", Cluster: cluster.Config.Host},
		SpoolDir: filepath.Join(state, "spool"), ShutdownTimeout: 30 * time.Second,
		Log: slog.New(slog.DiscardHandler),
	}
}

// startRun runs Run with o until the test ends, or stop, which returns
// what Run did; it returns once Run answers /readyz at baseURL through
// client (nil: the default).
func startRun(t *testing.T, o serve.Options, baseURL string, client *http.Client) (stop func() error) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve.Run(ctx, o) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(o.ShutdownTimeout + 10*time.Second):
			return errors.New("Run did not return after its context ended")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-errc:
			errc <- err // for stop
			t.Fatalf("Run returned %v before it was ready", err)
		default:
		}
		if resp, err := client.Get(baseURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("Run not ready within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
