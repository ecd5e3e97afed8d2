package kube_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"kir.dev/kir/internal/kube"
)

func TestYieldTransport(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	client := &http.Client{Transport: kube.YieldTransport(http.DefaultTransport)}
	get := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	// A plain context goes straight through.
	if err := get(context.Background()); err != nil || hits.Load() != 1 {
		t.Fatalf("plain request: err %v, %d hits, want 1", err, hits.Load())
	}
	// A yielding one waits first, and is sent after.
	var waited atomic.Int32
	ctx := kube.WithYield(context.Background(), func(context.Context) error {
		if hits.Load() != 1 {
			t.Error("the request went out before its wait")
		}
		waited.Add(1)
		return nil
	})
	if err := get(ctx); err != nil || waited.Load() != 1 || hits.Load() != 2 {
		t.Fatalf("yielding request: err %v, waited %d, %d hits; want one wait, then the request", err, waited.Load(), hits.Load())
	}
	// A wait that ends with its context sends nothing.
	stop := errors.New("stopped")
	ctx = kube.WithYield(context.Background(), func(context.Context) error { return stop })
	if err := get(ctx); !errors.Is(err, stop) || hits.Load() != 2 {
		t.Fatalf("cancelled wait: err %v, %d hits; want %v and no request", err, hits.Load(), stop)
	}
}
