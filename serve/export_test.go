package serve

import (
	"context"
	"net/http"

	"kir.dev/kir/internal/spool"
)

// What the tests of serve_test reach of the server Run runs: they serve
// its handler on httptest servers, start it later than Run would (to see
// /readyz before), and read its spool's counts.

// Server is the server Run runs.
type Server = server

// NewServer is newServer: Start it, serve its Handler, and Wait and Close
// it once Start's context has ended.
func NewServer(o Options) (*Server, error) { return newServer(o) }

func (s *server) Handler() http.Handler     { return s.handler() }
func (s *server) Start(ctx context.Context) { s.start(ctx) }
func (s *server) Wait()                     { s.wait() }
func (s *server) Close()                    { s.close() }
func (s *server) SpoolStats() spool.Stats   { return s.spool.Stats() }
