package serve

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"kir.dev/kir/action"
	"kir.dev/kir/budget"
	"kir.dev/kir/falco"
	"kir.dev/kir/guard"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/tamper"
)

// Defaults used when Options leave them zero.
const (
	DefaultListen    = "127.0.0.1:8765"
	DefaultBodyLimit = 1 << 20
	// DefaultWorkers: a storm on more pods than workers queues the rest
	// behind whole runs (their cordon included). With 64, the storm
	// benchmark's 100th pod waited 1.3 s for a worker; with 128 all 100
	// were isolated in 1.6 s, at the same peak RSS.
	DefaultWorkers    = 128
	DefaultCollectors = 2
	DefaultQueue      = 4096
	DefaultLease      = 15 * time.Second
	// DefaultShutdownTimeout is how long, once Run's context ends, the
	// runs in progress may go on before they are stopped.
	DefaultShutdownTimeout = 20 * time.Second
	// DefaultMemoryLimit is kir serve's soft memory limit (Options.MemoryLimit):
	// the Go heap and runtime, not the binary's pages. With it, a storm of
	// 10,000 alerts peaks at ~85 MiB resident (make bench), under the
	// Deployment's request.
	DefaultMemoryLimit = 48 << 20
)

// Options configure Run.
type Options struct {
	// Listen is the TCP address to serve on; "" means DefaultListen.
	Listen string
	// TLS, when set, makes Run speak HTTPS (see TLSConfig); nil serves
	// plain HTTP, which Run warns about on a non-loopback address.
	TLS *tls.Config
	// Auth is required: kir serve refuses unauthenticated intake.
	Auth *Auth
	// Routing maps alerts to playbooks; every route must name a playbook
	// of Library that takes its parameters (CheckRouting).
	Routing *falco.Config
	// Library holds the playbooks routes name.
	Library *playbooks.Library
	// Engine runs and journals the playbooks; its Runs are required (a run
	// is resumed after a restart from its journal). Run works on its own
	// copy: it sets Gate, when unset, to hold evidence collection behind
	// intake and isolation (Collectors).
	Engine playbooks.Engine
	// Env is what the runs run with (client, actor, version); each run
	// gets its own incident and logger. Progress is not used: runs log.
	Env action.Env
	// SpoolDir is the durable intake's directory (required): an alert is
	// answered 202 only once it is written and synced there, and the
	// alerts it holds unhandled are resumed on the next start.
	SpoolDir string
	// Guard refuses runs aimed at what kir never targets (package guard):
	// Run sets its Engine's Guard hook to it, never forcing, whatever the
	// Engine had. nil guards with the built-in list, kir living in
	// guard.DefaultNamespace.
	Guard *guard.Guard
	// Claims give each key to one replica; nil deduplicates within this
	// process only.
	Claims *Claims
	// Records, when set, records each accepted match that starts a run in
	// the API server before its 202, and takes over other replicas'
	// records whose claims expired (records.go).
	Records *Records
	// NotifyDir is the outbox of the routing's notifications (default:
	// SpoolDir-notify).
	NotifyDir string
	// Tamper, when set, runs the guard that restores lifted quarantines
	// (package tamper; serve/tamper.go). Unset fields come from the
	// server's: Kube from Env, Namespace from Env.KirNamespace, Identity,
	// Log. Its Report is called after serve's own.
	Tamper *tamper.Options
	// Budget, when set, holds a new run whose pod is over the
	// installation's budget, or every new run while kir is paused
	// (package budget), until a person approves it on its record.
	Budget *budget.Budget
	// RetryAttempts caps the attempts (a run and its resumes) at a key
	// whose runs fail for a transient reason; RetryBackoff is the wait
	// after the first such failure, doubled after each next one (see
	// transient). 0 means DefaultRetryAttempts, DefaultRetryBackoff; an
	// attempt cap of 1 retries nothing.
	RetryAttempts int
	RetryBackoff  time.Duration
	// Workers run playbooks; Queue bounds the routed alerts waiting for
	// one (a full queue answers 503).
	Workers, Queue int
	// Collectors bounds the evidence-collection steps (collect.pod,
	// collect.seal) running at once across all runs: isolation comes
	// first, and on a small machine collecting one pod's images must not
	// delay isolating the next. 0 means DefaultCollectors.
	Collectors int
	// Key, when set, is given as the key parameter (signing the evidence)
	// to the routed playbooks that take one and whose route sets none.
	Key string
	// BodyLimit bounds a request's body (413 above it).
	BodyLimit int64
	// ShutdownTimeout is how long, once Run's context ends, the runs in
	// progress may finish before they are stopped (the next start resumes
	// them); 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MemoryLimit, when positive, is the soft memory limit Run gives the
	// Go runtime while it runs (runtime/debug.SetMemoryLimit, in bytes):
	// the garbage collector works harder near it, so that an alert storm
	// does not balloon the receiver. See DefaultMemoryLimit.
	MemoryLimit int64
	// Metrics are what /metrics serves; nil means NewMetrics.
	Metrics *Metrics
	// Log receives what the server does; nil logs nothing.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run serves alerts until ctx ends, then shuts down: it stops taking
// requests, lets the runs in progress finish within ShutdownTimeout, and
// returns nil. What is left unhandled stays in the spool, and in the runs'
// journals, for the next start to resume. An error is returned for options
// Run cannot serve with, and for a listener that fails.
func Run(ctx context.Context, o Options) error {
	s, err := newServer(o)
	if err != nil {
		return err
	}
	defer s.close()
	if s.o.MemoryLimit > 0 {
		defer setMemoryLimit(s.o.MemoryLimit)()
	}
	ln, err := net.Listen("tcp", s.o.Listen)
	if err != nil {
		return err
	}
	if s.o.TLS == nil && !isLoopback(ln.Addr()) {
		s.o.Log.Warn("serving plain HTTP on a non-loopback address: alerts and the token cross the network in clear; give a TLS certificate and key")
	}
	return s.serve(ctx, ln)
}

// guardHook is the Engine's Guard hook the server sets: Guard's check,
// never forcing (kir serve acts on alerts; only a person may force).
func (o *Options) guardHook() func(context.Context, action.Env, *playbooks.Playbook, map[string]any) ([]string, error) {
	g := guard.Guard{}
	if o.Guard != nil {
		g = *o.Guard
	}
	g.Force = false
	return g.Check
}

// setMemoryLimit sets the runtime's soft memory limit and returns what
// puts the former one back.
func setMemoryLimit(limit int64) (restore func()) {
	prev := debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(prev) }
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// serve serves on ln until ctx ends or serving fails, then shuts down.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler(),
		TLSConfig:         s.o.TLS,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Log.Handler(), slog.LevelWarn),
	}
	// The workers outlive ctx by the shutdown's grace: they stop on
	// stopWork, once drained.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	s.o.Log.Info("kir serve listening", "addr", ln.Addr().String(), "tls", s.o.TLS != nil,
		"pending", len(s.pending), "claims", s.o.Claims != nil, "version", s.o.Env.Version)
	s.start(work)
	served := make(chan error, 1)
	go func() {
		if s.o.TLS != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		stopWork()
		s.wait()
		return err
	case <-ctx.Done():
	}
	s.o.Log.Info("stopping: no new alerts; running playbooks may finish", "timeout", s.o.ShutdownTimeout)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.ShutdownTimeout)
	defer cancel()
	_ = hs.Shutdown(shutdown) // past its deadline, Drain's ends too
	s.drain(shutdown)
	stopWork()
	s.wait()
	s.o.Log.Info("stopped")
	return nil
}
