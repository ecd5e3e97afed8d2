package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kir.dev/kir/action"
	"kir.dev/kir/falco"
	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/spool"
	"kir.dev/kir/playbooks"
)

// Defaults used when Options leave them zero.
const (
	DefaultBodyLimit = 1 << 20
	// DefaultWorkers: a storm on more pods than workers queues the rest
	// behind whole runs (their cordon included). With 64, the storm
	// benchmark's 100th pod waited 1.3 s for a worker; with 128 all 100
	// were isolated in 1.6 s, at the same peak RSS.
	DefaultWorkers    = 128
	DefaultCollectors = 2
	DefaultQueue      = 4096
	DefaultLease      = 15 * time.Second
)

// Options configure a Server.
type Options struct {
	// Auth is required: kir serve refuses unauthenticated intake.
	Auth *Auth
	// Routing maps alerts to playbooks.
	Routing *falco.Config
	// Library holds the playbooks routes name; Engine runs and journals
	// them; Env is what they run with (client, actor, version); each run
	// gets its own incident.
	Library *playbooks.Library
	Engine  *playbooks.Engine
	Env     action.Env
	// Spool is the durable intake; Pending are the items it returned on
	// opening, resumed by Start.
	Spool   *spool.Spool
	Pending []spool.Item
	// Claims give each key to one replica; nil deduplicates within this
	// process only.
	Claims *Claims
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
	Metrics   *Metrics
	Log       *slog.Logger
	Now       func() time.Time
}

// Server receives alerts, keeps them durably, routes and deduplicates
// them, and runs their playbooks with a bounded pool of workers.
type Server struct {
	o      Options
	tasks  chan *task
	queued atomic.Int64 // tasks accepted and not yet taken by a worker
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
}

// record is what the spool keeps of an accepted alert: enough to run it
// again after a restart whatever the routing then says.
type record struct {
	Received time.Time       `json:"received"`
	Alert    json.RawMessage `json:"alert"`
	Matches  []falco.Match   `json:"matches"`
}

// encode is json.Marshal(r) without checking and compacting the alert
// again, which falco.Decode has found valid: intake encodes every alert of
// a storm.
func (r record) encode() ([]byte, error) {
	received, err := r.Received.MarshalJSON()
	if err != nil {
		return nil, err
	}
	matches, err := json.Marshal(r.Matches)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(received)+len(r.Alert)+len(matches)+40)
	out = append(append(append(out, `{"received":`...), received...), `,"alert":`...)
	out = append(append(append(out, r.Alert...), `,"matches":`...), matches...)
	return append(out, '}'), nil
}

// item is an accepted alert whose matches are being worked on.
type item struct {
	id       uint64
	received time.Time
	left     atomic.Int32 // matches not yet resolved
	mu       sync.Mutex
	outcomes []string
}

// task is one match of one alert. A task that waits for another of its
// key's run drops its alert: in a storm, thousands of them wait.
type task struct {
	item  *item
	index int
	match falco.Match
	uuid  string
	alert *falco.Alert
	// entered says the key table already took the task in (at intake, or
	// before a retry).
	entered bool
	// retry says the task's key was claimed before, and another replica
	// held it.
	retry bool
}

// New checks the options and returns a server; Start starts its workers.
func New(o Options) (*Server, error) {
	switch {
	case o.Auth == nil || (len(o.Auth.Token) == 0 && o.Auth.ClientCAs == nil):
		return nil, errors.New("kir serve needs a bearer token or client certificate authority: unauthenticated intake would let anyone contain pods")
	case o.Routing == nil, o.Library == nil, o.Engine == nil, o.Spool == nil:
		return nil, errors.New("serve: Routing, Library, Engine and Spool are required")
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Collectors <= 0 {
		o.Collectors = DefaultCollectors
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = DefaultBodyLimit
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
	for _, m := range o.Routing.Playbooks() {
		if _, ok := o.Library.Get(m); !ok {
			return nil, fmt.Errorf("routing names playbook %q, which does not exist (have: %v)", m, o.Library.Names())
		}
	}
	s := &Server{o: o, tasks: make(chan *task, o.Queue), workers: make(chan struct{}, o.Workers), keys: newKeyTable(), draining: make(chan struct{})}
	if o.Engine.Gate == nil {
		o.Engine.Gate = s.collectGate(o.Collectors)
	}
	return s, nil
}

// Handler serves POST / and /falco (alerts), /healthz, /readyz and
// /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.intake)
	mux.HandleFunc("/falco", s.intake)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "starting: resuming queued alerts", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Metrics.Registry, promhttp.HandlerOpts{}))
	return recoverer(s.o.Log, s.o.Metrics, mux)
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
func (s *Server) quiet() bool {
	return s.receiving.Load() == 0 && s.queued.Load() == 0 && len(s.workers) == 0 &&
		time.Since(time.Unix(0, s.lastAlert.Load())) >= quietPeriod
}

// yield waits until the server is quiet, or until the time until, whichever
// comes first.
func (s *Server) yield(ctx context.Context, until time.Time) error {
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
func (s *Server) collectGate(n int) func(ctx context.Context, action string) (context.Context, func(), error) {
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

// Response is the 202's body.
type Response struct {
	ID      uint64        `json:"id"`
	UUID    string        `json:"uuid,omitempty"`
	Matches []MatchStatus `json:"matches"`
	Skipped []falco.Skip  `json:"skipped,omitempty"`
}

// MatchStatus says what became of one routing match.
type MatchStatus struct {
	Rule     string `json:"rule"`
	Playbook string `json:"playbook"`
	Key      string `json:"key"`
	DryRun   bool   `json:"dryRun,omitempty"`
}

func (s *Server) reject(w http.ResponseWriter, code int, reason, msg string) {
	s.o.Metrics.Rejected.WithLabelValues(reason).Inc()
	http.Error(w, msg, code)
}

func (s *Server) intake(w http.ResponseWriter, r *http.Request) {
	began := s.o.Now()
	s.receiving.Add(1)
	defer func() {
		s.lastAlert.Store(time.Now().UnixNano())
		s.receiving.Add(-1)
	}()
	s.o.Metrics.Received.Inc()
	if r.URL.Path != "/" && r.URL.Path != "/falco" {
		s.reject(w, http.StatusNotFound, "path", "not found: post alerts to / or /falco")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, http.StatusMethodNotAllowed, "method", "POST alerts here")
		return
	}
	// Credentials first: an unauthenticated body is never read.
	who, err := s.o.Auth.authenticate(r)
	if err != nil {
		s.o.Log.Warn("alert refused", "reason", err.Error(), "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="kir"`)
		s.reject(w, http.StatusUnauthorized, "unauthorized", "unauthorized")
		return
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.o.BodyLimit), r.ContentLength, s.o.BodyLimit)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		s.reject(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("body over %d bytes", s.o.BodyLimit))
		return
	}
	if err != nil {
		s.reject(w, http.StatusBadRequest, "read", "reading the body: "+err.Error())
		return
	}
	forget, err := s.o.Auth.verifyHMAC(r, body, began)
	if err != nil {
		s.o.Log.Warn("alert refused", "reason", err.Error(), "remote", r.RemoteAddr)
		s.reject(w, http.StatusUnauthorized, "unauthorized", "unauthorized")
		return
	}
	alert, err := falco.Decode(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "malformed", "not a Falco alert: "+err.Error())
		return
	}
	matches, skipped := s.o.Routing.Route(alert)
	// Room in the queue is reserved before the alert is made durable: a
	// 503 accepts nothing, a 202 is never dropped.
	n := int64(len(matches))
	if s.queued.Add(n) > int64(s.o.Queue) {
		s.queued.Add(-n)
		forget()
		w.Header().Set("Retry-After", "1")
		s.reject(w, http.StatusServiceUnavailable, "queue-full", "queue full, retry later")
		return
	}
	raw, err := record{Received: began.UTC(), Alert: body, Matches: matches}.encode()
	if err != nil {
		s.queued.Add(-n)
		s.reject(w, http.StatusInternalServerError, "encode", "encoding the alert")
		return
	}
	it, err := s.o.Spool.Add(r.Context(), raw)
	if err != nil {
		s.queued.Add(-n)
		forget()
		s.o.Log.Error("storing an alert", "err", err)
		s.reject(w, http.StatusServiceUnavailable, "store", "could not store the alert, retry later")
		return
	}
	s.o.Metrics.Accepted.Inc()
	// A logger with the alert's attributes costs a few microseconds to
	// build: only an alert that has something to say pays for it.
	log := sync.OnceValue(func() *slog.Logger {
		return s.o.Log.With("alert", it.ID, "uuid", alert.UUID, "rule", alert.Rule, "from", who)
	})
	for _, sk := range skipped {
		log().Info("routing rule not applied", "routingRule", sk.Rule, "reason", sk.Reason)
	}
	resp := Response{ID: it.ID, UUID: alert.UUID, Matches: []MatchStatus{}, Skipped: skipped}
	for _, m := range matches {
		resp.Matches = append(resp.Matches, MatchStatus{Rule: m.Rule, Playbook: m.Playbook, Key: m.Key, DryRun: m.DryRun})
	}
	s.enqueue(&item{id: it.ID, received: began}, alert, matches, true, log)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(resp)
	s.o.Metrics.AcceptLatency.Observe(s.o.Now().Sub(began).Seconds())
}

// readBody reads a request's body into a buffer sized from its
// Content-Length when it gives one within limit: io.ReadAll's doubling
// would leave several times the body as garbage for each alert of a storm.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	if length <= 0 || length > limit {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, length+bytes.MinRead)) // room to read EOF
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// enqueue hands an accepted alert's matches to the workers; queue room is
// already reserved for them. At intake (fresh), a match whose key a run
// already covers is settled here, without a worker: the storm Falco makes
// of one shell costs one run and a few microseconds per duplicate. An
// alert nothing acts on is done at once.
func (s *Server) enqueue(it *item, alert *falco.Alert, matches []falco.Match, fresh bool, log func() *slog.Logger) {
	if len(matches) == 0 {
		s.o.Metrics.Unrouted.Inc()
		log().Info("alert recorded; no routing rule acts on it")
		s.done(it, "unrouted")
		return
	}
	it.left.Store(int32(len(matches)))
	for i, m := range matches {
		t := &task{item: it, index: i, match: m, uuid: alert.UUID, alert: alert}
		if fresh && !m.DryRun {
			run, duplicate := s.keys.enter(m.Key, t, s.o.Now())
			t.entered = true
			if !run {
				s.queued.Add(-1)
				if duplicate {
					s.o.Metrics.Deduplicated.Inc()
					s.resolve(t, "duplicate")
				}
				continue // or it waits for the key's run
			}
		}
		s.tasks <- t
		s.o.Metrics.Queue.Inc()
	}
}

// done records an alert as handled in the spool.
func (s *Server) done(it *item, outcome string) {
	if err := s.o.Spool.Done(it.id, []byte(outcome)); err != nil {
		s.o.Log.Error("recording an alert as handled; it will be replayed after a restart", "alert", it.id, "err", err)
	}
}

// resolve records the outcome of one match; the alert is done when all
// are.
func (s *Server) resolve(t *task, outcome string) {
	t.item.mu.Lock()
	t.item.outcomes = append(t.item.outcomes, fmt.Sprintf("%d:%s", t.index, outcome))
	t.item.mu.Unlock()
	if t.item.left.Add(-1) == 0 {
		t.item.mu.Lock()
		out, _ := json.Marshal(t.item.outcomes)
		t.item.mu.Unlock()
		s.done(t.item, string(out))
	}
}

// WithKey gives a routed playbook's parameters the signing key of the
// evidence, when the playbook takes a key and the route sets none.
// kir serve and kir falco replay run alerts the same way.
func WithKey(pb *playbooks.Playbook, given map[string]any, key string) map[string]any {
	if key == "" || !pb.Takes("key") {
		return given
	}
	if _, set := given["key"]; set {
		return given
	}
	out := maps.Clone(given)
	if out == nil {
		out = map[string]any{}
	}
	out["key"] = key
	return out
}
