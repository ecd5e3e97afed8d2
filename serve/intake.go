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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/record"
)

// spooled is what the spool keeps of an accepted alert: enough to run it
// again after a restart whatever the routing then says.
type spooled struct {
	Received time.Time       `json:"received"`
	Alert    json.RawMessage `json:"alert"`
	Matches  []falco.Match   `json:"matches"`
}

// encode is json.Marshal(r) without checking and compacting the alert
// again, which falco.Decode has found valid: intake encodes every alert of
// a storm.
func (r spooled) encode() ([]byte, error) {
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
	// raw is the alert's body, until its matches are recorded (records.go);
	// records are its matches' record names when known beforehand (a
	// record taken over).
	raw     []byte
	records []string
	// approved: a person approved its held run (over the budget, or
	// while kir was paused): it runs regardless.
	approved bool
	left     atomic.Int32 // matches not yet resolved
	mu       sync.Mutex
	outcomes []string
}

// task is one match of one alert. A task that waits for another of its
// key's run drops its alert: in a storm, thousands of them wait.
type task struct {
	item  *item
	index int
	// record names the match's response record ("" for none); recorded
	// is closed once it is written (recordOK: it was), which may be after
	// the task reached a worker: the run does not wait for it (recordOf).
	record   string
	recorded chan struct{}
	recordOK bool
	match    falco.Match
	uuid     string
	alert    *falco.Alert
	// entered says the key table already took the task in (at intake, or
	// before a retry).
	entered bool
	// retry says the task's key was claimed before, and another replica
	// held it.
	retry bool
	// resume is the key's run that failed for a transient reason, to be
	// resumed, and attempts the key's transient failures so far (from the
	// key table; a claim across replicas says it instead).
	resume   string
	attempts int
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

func (s *server) reject(w http.ResponseWriter, code int, reason, msg string) {
	s.o.Metrics.Rejected.WithLabelValues(reason).Inc()
	http.Error(w, msg, code)
}

// notFound answers a request for a path that is not served.
func (s *server) notFound(w http.ResponseWriter, _ *http.Request) {
	s.o.Metrics.Received.Inc()
	s.reject(w, http.StatusNotFound, "path", "not found: post alerts to / or /falco")
}

// wrongMethod answers a request to an alert path other than a POST.
func (s *server) wrongMethod(w http.ResponseWriter, _ *http.Request) {
	s.o.Metrics.Received.Inc()
	w.Header().Set("Allow", http.MethodPost)
	s.reject(w, http.StatusMethodNotAllowed, "method", "POST alerts here")
}

// intake accepts a posted alert: authenticated, bounded, valid, routed,
// and durable in the spool before its 202.
func (s *server) intake(w http.ResponseWriter, r *http.Request) {
	began := s.o.Now()
	s.receiving.Add(1)
	defer func() {
		s.lastAlert.Store(time.Now().UnixNano())
		s.receiving.Add(-1)
	}()
	s.o.Metrics.Received.Inc()
	body, who, forget, ok := s.admit(w, r, began)
	if !ok {
		return
	}
	alert, err := falco.Decode(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "malformed", "not a Falco alert: "+err.Error())
		return
	}
	matches, skipped := s.o.Routing.Route(alert)
	id, ok := s.store(w, r, spooled{Received: began.UTC(), Alert: body, Matches: matches}, forget)
	if !ok {
		return
	}
	s.o.Metrics.Accepted.Inc()
	// A logger with the alert's attributes costs a few microseconds to
	// build: only an alert that has something to say pays for it.
	log := sync.OnceValue(func() *slog.Logger {
		return s.o.Log.With("alert", id, "uuid", alert.UUID, "rule", alert.Rule, "from", who)
	})
	for _, sk := range skipped {
		log().Info("routing rule not applied", "routingRule", sk.Rule, "reason", sk.Reason)
	}
	resp := Response{ID: id, UUID: alert.UUID, Matches: []MatchStatus{}, Skipped: skipped}
	for _, m := range matches {
		resp.Matches = append(resp.Matches, MatchStatus{Rule: m.Rule, Playbook: m.Playbook, Key: m.Key, DryRun: m.DryRun})
	}
	s.enqueue(&item{id: id, received: began, raw: body}, alert, matches, true, log)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(resp)
	s.o.Metrics.AcceptLatency.Observe(s.o.Now().Sub(began).Seconds())
}

// admit checks a request's credentials, then reads its body within the
// limit and checks its signature; it answers the request when it refuses
// it (ok false). Credentials come first: an unauthenticated body is never
// read. forget undoes the signature's use (verifyHMAC).
func (s *server) admit(w http.ResponseWriter, r *http.Request, now time.Time) (body []byte, who string, forget func(), ok bool) {
	who, err := s.o.Auth.authenticate(r)
	if err != nil {
		s.o.Log.Warn("alert refused", "reason", err.Error(), "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="kir"`)
		s.reject(w, http.StatusUnauthorized, "unauthorized", "unauthorized")
		return nil, "", nil, false
	}
	body, err = readBody(http.MaxBytesReader(w, r.Body, s.o.BodyLimit), r.ContentLength, s.o.BodyLimit)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		s.reject(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("body over %d bytes", s.o.BodyLimit))
		return nil, "", nil, false
	}
	if err != nil {
		s.reject(w, http.StatusBadRequest, "read", "reading the body: "+err.Error())
		return nil, "", nil, false
	}
	if forget, err = s.o.Auth.verifyHMAC(r, body, now); err != nil {
		s.o.Log.Warn("alert refused", "reason", err.Error(), "remote", r.RemoteAddr)
		s.reject(w, http.StatusUnauthorized, "unauthorized", "unauthorized")
		return nil, "", nil, false
	}
	return body, who, forget, true
}

// store reserves room in the queue for rec's matches, then makes rec
// durable in the spool and returns its id; it answers the request when it
// cannot (ok false). Room is reserved first: a 503 accepts nothing, a 202
// is never dropped.
func (s *server) store(w http.ResponseWriter, r *http.Request, rec spooled, forget func()) (id uint64, ok bool) {
	n := int64(len(rec.Matches))
	if s.queued.Add(n) > int64(s.o.Queue) {
		s.queued.Add(-n)
		forget()
		w.Header().Set("Retry-After", "1")
		s.reject(w, http.StatusServiceUnavailable, "queue-full", "queue full, retry later")
		return 0, false
	}
	raw, err := rec.encode()
	if err != nil {
		s.queued.Add(-n)
		s.reject(w, http.StatusInternalServerError, "encode", "encoding the alert")
		return 0, false
	}
	it, err := s.spool.Add(r.Context(), raw)
	if err != nil {
		s.queued.Add(-n)
		forget()
		s.o.Log.Error("storing an alert", "err", err)
		s.reject(w, http.StatusServiceUnavailable, "store", "could not store the alert, retry later")
		return 0, false
	}
	return it.ID, true
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
func (s *server) enqueue(it *item, alert *falco.Alert, matches []falco.Match, fresh bool, log func() *slog.Logger) {
	if len(matches) == 0 {
		s.o.Metrics.Unrouted.Inc()
		log().Info("alert recorded; no routing rule acts on it")
		s.done(it, "unrouted")
		return
	}
	it.left.Store(int32(len(matches)))
	var writes []func()
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
		write := s.recordTask(t)
		s.tasks <- t
		s.o.Metrics.Queue.Inc()
		if write != nil {
			writes = append(writes, write)
		}
	}
	// The records are written while the runs start, and before the 202.
	for _, write := range writes {
		write()
	}
	it.raw = nil
}

// recordTask names the record of a match about to run and returns what
// writes it, to be called before the alert's 202 (nil: nothing to write).
func (s *server) recordTask(t *task) func() {
	if t.index < len(t.item.records) {
		t.record, t.recordOK = t.item.records[t.index], true
		return nil
	}
	if s.rec == nil || t.item.raw == nil || t.match.DryRun {
		return nil
	}
	t.record, t.recorded = record.Name(record.Sum(t.item.raw), t.index), make(chan struct{})
	raw := t.item.raw
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		defer cancel()
		t.recordOK = s.rec.accept(ctx, raw, t.alert, t.index, t.match, t.item.received) != ""
		close(t.recorded)
	}
}

// recordOf is the name of t's record once it is written, "" if it could
// not be.
func (s *server) recordOf(t *task) string {
	if t.recorded != nil {
		select {
		case <-t.recorded:
		case <-time.After(recordTimeout):
			return ""
		}
	}
	if !t.recordOK {
		return ""
	}
	return t.record
}

// recordTimeout bounds the write of a record: past it the alert is
// accepted in the local spool only.
const recordTimeout = 5 * time.Second

// done records an alert as handled in the spool.
func (s *server) done(it *item, outcome string) {
	if err := s.spool.Done(it.id, []byte(outcome)); err != nil {
		s.o.Log.Error("recording an alert as handled; it will be replayed after a restart", "alert", it.id, "err", err)
	}
}

// resolve records the outcome of one match; the alert is done when all
// are.
func (s *server) resolve(t *task, outcome string) {
	s.rec.finished(context.Background(), s.recordOf(t), outcome)
	s.recordRerunDecisions(t, outcome)
	s.notify(t, outcome)
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

// CheckRouting reports, at the routing config's positions, every rule
// whose playbook lib does not hold or does not take one of the rule's
// parameters. Run checks its options with it; kir falco replay, which
// runs alerts as kir serve does, checks the same.
func CheckRouting(routing *falco.Config, lib *playbooks.Library) error {
	return routing.Check(func(r *falco.Rule) error {
		e, ok := lib.Get(r.Playbook)
		if !ok {
			return fmt.Errorf("no playbook named %s (have: %s)", r.Playbook, strings.Join(lib.Names(), ", "))
		}
		var unknown []string
		for _, name := range r.ParamNames() {
			if !e.Playbook.Takes(name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("playbook %s takes no parameter %s", r.Playbook, strings.Join(unknown, ", "))
		}
		return nil
	})
}
