package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// ociRegistry is an OCI registry in this process, in memory, on
// 127.0.0.1 over plain HTTP: where the demo app's image is pushed, and
// where kir pulls it from as evidence.
type ociRegistry struct {
	// addr is its HOST:PORT.
	addr string
	srv  *http.Server
	// done receives why it stopped serving, if it stops before close.
	done chan error
}

// startRegistry serves a registry on a free port; it logs every request to
// logTo.
func startRegistry(logTo io.Writer) (*ociRegistry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the registry: %w", err)
	}
	r := &ociRegistry{
		addr: l.Addr().String(),
		srv: &http.Server{
			Handler:           registry.New(registry.Logger(log.New(logTo, "registry: ", 0))),
			ReadHeaderTimeout: 10 * time.Second,
		},
		done: make(chan error, 1),
	}
	go func() {
		if err := r.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			r.done <- fmt.Errorf("registry stopped serving: %w", err)
		}
	}()
	return r, nil
}

// close stops it at once: its content dies with the cluster.
func (r *ociRegistry) close() { _ = r.srv.Close() }
