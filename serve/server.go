package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/spool"
	"kir.dev/kir/notify"
	"kir.dev/kir/playbooks"
)

// server receives alerts, keeps them durably, routes and deduplicates
// them, and runs their playbooks with a bounded pool of workers. Run is
// its lifecycle: newServer, start, serve the handler, drain, wait, close.
type server struct {
	o Options
	// guard is the runs' guard (Options.Guard, never forced); the
	// engine's Guard is guardedContext.
	guard func(context.Context, action.Env, *playbooks.Playbook, map[string]any) ([]string, error)
	// tamperLimit bounds the tamper guard's findings in the evidence.
	tamperLimit tamperLimiter
	spool       *spool.Spool
	pending     []spool.Item // what the spool kept, until start resumes it
	tasks       chan *task
	queued      atomic.Int64 // tasks accepted and not yet taken by a worker
	// workers holds a token per run holding a worker (see dispatch);
	// receiving counts the alerts being received; lastAlert is when the
	// last one came (Unix ns). Evidence collection waits for all three to
	// settle (quiet).
	workers   chan struct{}
	receiving atomic.Int64
	lastAlert atomic.Int64
	ready     atomic.Bool
	wg        sync.WaitGroup
	keys      *keyTable
	// draining stops workers from taking tasks; active counts runs.
	draining chan struct{}
	drainMu  sync.Once
	active   sync.WaitGroup
	// rec keeps the response records; nil keeps none.
	rec *recorder
	// outbox holds notifications until their sinks take them; nil sends
	// none.
	outbox *notify.Outbox
}

// newServer checks the options, completes them with their defaults, and
// opens the spool; close closes it.
func newServer(o Options) (*server, error) {
	switch {
	case o.Auth == nil || (len(o.Auth.Token) == 0 && o.Auth.ClientCAs == nil):
		return nil, errors.New("kir serve needs a bearer token or client certificate authority: unauthenticated intake would let anyone contain pods")
	case o.Routing == nil, o.Library == nil, o.Engine.Runs == nil, o.SpoolDir == "":
		return nil, errors.New("serve: Routing, Library, Engine.Runs and SpoolDir are required")
	}
	if err := CheckRouting(o.Routing, o.Library); err != nil {
		return nil, err
	}
	o = withDefaults(o)
	sp, pending, err := spool.Open(o.SpoolDir, spool.WithLogger(o.Log))
	if err != nil {
		return nil, err
	}
	s := &server{
		o: o, spool: sp, pending: pending,
		tasks: make(chan *task, o.Queue), workers: make(chan struct{}, o.Workers),
		keys: newKeyTable(), draining: make(chan struct{}),
	}
	if s.rec = newRecorder(o.Records, o.Now); s.rec != nil {
		s.rec.onFail = o.Metrics.RecordFailures.Inc
		s.rec.onAdopted, s.rec.onExpired = s.renotifyHeld, s.notifyExpired
	}
	// A step that needs approval runs only once a person approved it on
	// the run's record (kir runs approve --step); without records, never.
	s.o.Engine.Approvals = playbooks.ApprovalsFunc(s.rec.decideStep)
	// A cordon over the node budget waits for a person; the rest of its
	// run does not.
	s.o.Engine.Limits = playbooks.LimitsFunc(s.deferStep)
	if err := s.openOutbox(); err != nil {
		_ = sp.Close()
		return nil, err
	}
	// o is a copy, and so is its Engine: the caller's is left as it was.
	s.guard = s.o.guardHook()
	s.o.Engine.Guard = s.guardedContext
	if s.o.Engine.Gate == nil {
		s.o.Engine.Gate = s.collectGate(o.Collectors)
	}
	s.o.Env.Progress = nil
	return s, nil
}

// withDefaults fills o's unset optional fields.
func withDefaults(o Options) Options {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.RetryAttempts <= 0 {
		o.RetryAttempts = DefaultRetryAttempts
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.Collectors <= 0 {
		o.Collectors = DefaultCollectors
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = DefaultBodyLimit
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// close closes the spool, once the workers are done (wait): alerts
// marked done since the last commit are committed.
func (s *server) close() {
	if err := s.spool.Close(); err != nil {
		s.o.Log.Error("closing the spool", "err", err)
	}
	if s.outbox != nil {
		if err := s.outbox.Close(); err != nil {
			s.o.Log.Error("closing the notifications' outbox", "err", err)
		}
	}
}

// handler serves POST / and /falco (alerts), /healthz, /readyz and
// /metrics; any other path is a 404, another method on an alert path a
// 405, both counted as rejected alerts.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", s.intake)
	mux.HandleFunc("POST /falco", s.intake)
	mux.HandleFunc("/{$}", s.wrongMethod)
	mux.HandleFunc("/falco", s.wrongMethod)
	mux.HandleFunc("/", s.notFound)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Metrics.Registry, promhttp.HandlerOpts{}))
	return recoverer(s.o.Log, s.o.Metrics, mux)
}

// readyz answers 200 once start has queued again what the spool kept.
// A replica whose response records cannot be written still accepts
// alerts (in its spool only): it stays ready, and says so.
func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "starting: resuming queued alerts", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
	if p := s.rec.problem(); p != "" {
		io.WriteString(w, p+"\n")
	}
}

// Evidence collection yields to intake and isolation: a collection step
// starts, and each of its API requests goes out, only once no alert has
// been received for quietPeriod, none waits for a worker and no run is
// isolating; after maxYield it goes on regardless. The pod as it was is
// recorded before isolation (collect.snapshot-pod), and logs and images do
// not change with it, so the wait costs the evidence nothing.
const (
	quietPeriod = 50 * time.Millisecond
	maxYield    = 10 * time.Second
)

// quiet says whether nothing more urgent than evidence collection is
// going on: no alert being received or received within quietPeriod, none
// queued, no run holding a worker (runs give theirs back on reaching
// collection).
func (s *server) quiet() bool {
	return s.receiving.Load() == 0 && s.queued.Load() == 0 && len(s.workers) == 0 &&
		time.Since(time.Unix(0, s.lastAlert.Load())) >= quietPeriod
}

// yield waits until the server is quiet, or until the time until, whichever
// comes first.
func (s *server) yield(ctx context.Context, until time.Time) error {
	if s.quiet() || !time.Now().Before(until) {
		return nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if s.quiet() || !time.Now().Before(until) {
				return nil
			}
		}
	}
}

// collectGate lets n evidence-collection steps run at once, each yielding
// to intake and isolation (see quietPeriod); every other step runs at
// once.
func (s *server) collectGate(n int) func(ctx context.Context, action string) (context.Context, func(), error) {
	slots := make(chan struct{}, n)
	return func(ctx context.Context, action string) (context.Context, func(), error) {
		if action != "collect.pod" && action != "collect.seal" {
			return ctx, func() {}, nil
		}
		releaseWorker(ctx) // waiting here must not hold up other alerts
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		until := time.Now().Add(maxYield)
		if err := s.yield(ctx, until); err != nil {
			<-slots
			return nil, nil, err
		}
		ctx = kube.WithYield(ctx, func(ctx context.Context) error { return s.yield(ctx, until) })
		return ctx, func() { <-slots }, nil
	}
}

// recoverer turns a panic in one request into a 500 for that request.
func recoverer(log *slog.Logger, m *Metrics, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				m.Rejected.WithLabelValues("panic").Inc()
				log.Error("panic serving a request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
