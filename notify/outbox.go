package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"kir.dev/kir/internal/spool"
)

// Metrics are the outbox's counters, by sink name; a nil func counts
// nothing. They are called from the outbox's goroutines and must not
// block.
type Metrics struct {
	// Queued counts events made durable for a sink.
	Queued func(sink string)
	// Sent counts messages a sink acknowledged, and the events in them.
	Sent func(sink string, events int)
	// Failed counts attempts that failed (and will be retried, or given up).
	Failed func(sink string)
	// GivenUp counts messages dropped unacknowledged after GiveUpAfter
	// (or whose sink is no longer configured), and the events in them.
	GivenUp func(sink string, events int)
}

// Option configures Open.
type Option func(*options)

type options struct {
	log                    *slog.Logger
	metrics                Metrics
	minBackoff, maxBackoff time.Duration
}

// WithLogger makes the outbox log failed attempts (warn), messages given
// up (error) and deliveries (debug). Without it the outbox logs nothing.
// No log line holds a sink's URL or key.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics sets the counters.
func WithMetrics(m Metrics) Option { return func(o *options) { o.metrics = m } }

// WithBackoff sets the bounds of the delay between attempts of a
// message: it starts at min and doubles up to max, jittered, never under
// min (1s by default: the timestamps of two attempts then differ, and a
// receiver that refuses replayed signatures takes the retry) nor over max
// (5m by default).
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = min, max }
}

// Outbox holds notifications on disk until their sinks acknowledge them.
// Its methods are safe for concurrent use.
type Outbox struct {
	sp      *spool.Spool
	senders []*sender
	log     *slog.Logger
	metrics Metrics
}

// stored is an outbox record: one event for one sink.
type stored struct {
	Sink  string `json:"sink"`
	Event Event  `json:"event"`
}

// Open opens the outbox in dir (created if needed, as a spool: see
// internal/spool) with the sinks of c, reading their secret files, and
// takes up the messages a previous process left unacknowledged: Run
// sends them. Messages for a sink c no longer has are given up, logged.
func Open(dir string, c *Config, opts ...Option) (*Outbox, error) {
	o := options{log: slog.New(slog.NewTextHandler(io.Discard, nil)), minBackoff: time.Second, maxBackoff: 5 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.minBackoff <= 0 || o.maxBackoff < o.minBackoff {
		return nil, fmt.Errorf("notifications: backoff %s..%s: want 0 < min <= max", o.minBackoff, o.maxBackoff)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	sinks, err := newSinks(c)
	if err != nil {
		return nil, err
	}
	sp, items, err := spool.Open(dir, spool.WithLogger(o.log))
	if err != nil {
		return nil, fmt.Errorf("opening the notification outbox: %w", err)
	}
	ob := &Outbox{sp: sp, log: o.log, metrics: o.metrics}
	set := c.settings()
	byName := map[string]*sender{}
	for _, s := range sinks {
		sd := &sender{sink: s, settings: set, opts: o, done: ob.done, wake: make(chan struct{}, 1)}
		ob.senders = append(ob.senders, sd)
		byName[s.Name()] = sd
	}
	now := time.Now()
	for _, it := range items {
		ob.takeUp(it, byName, now)
	}
	return ob, nil
}

// takeUp queues an item a previous process left.
func (ob *Outbox) takeUp(it spool.Item, byName map[string]*sender, now time.Time) {
	var st stored
	if err := json.Unmarshal(it.Data, &st); err != nil {
		ob.log.Error("notification outbox: dropping an unreadable record", "item", it.ID, "error", err)
		ob.done(it.ID, "unreadable")
		return
	}
	s := byName[st.Sink]
	if s == nil {
		ob.log.Error("notification given up: its sink is no longer configured", "sink", st.Sink,
			"run", st.Event.Run, "kind", st.Event.Kind)
		ob.done(it.ID, "sink removed")
		if f := ob.metrics.GivenUp; f != nil {
			f(st.Sink, 1)
		}
		return
	}
	s.admit(entry{id: it.ID, ev: st.Event, added: it.Added}, now)
}

func (ob *Outbox) done(id uint64, outcome string) {
	if err := ob.sp.Done(id, []byte(outcome)); err != nil {
		// Left pending, the message is sent again after a restart.
		ob.log.Warn("notification outbox: marking a message done", "item", id, "error", err)
	}
}

// Enqueue makes ev durable for each sink that wants its kind, and returns
// once it is on disk (fsynced): it never waits on a sink. Run delivers it.
// Enqueue sets ev.ID when it is empty; a caller that may enqueue one
// outcome twice (another replica taking a run over) sets a stable one,
// so that receivers can tell. An error for one sink does not keep ev from
// the others.
func (ob *Outbox) Enqueue(ctx context.Context, ev Event) error {
	if err := ev.check(); err != nil {
		return fmt.Errorf("enqueuing a notification: %w", err)
	}
	ev.bound()
	if ev.ID == "" {
		ev.ID = newID()
	}
	ev.ID = truncate(ev.ID)
	var targets []*sender
	for _, s := range ob.senders {
		if s.sink.Wants(ev.Kind) {
			targets = append(targets, s)
		}
	}
	// Concurrent Adds share one fsync (the spool's group commit).
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, s := range targets {
		wg.Go(func() { errs[i] = ob.enqueue(ctx, s, &ev) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (ob *Outbox) enqueue(ctx context.Context, s *sender, ev *Event) error {
	name := s.sink.Name()
	data, err := json.Marshal(stored{Sink: name, Event: *ev})
	if err != nil {
		return fmt.Errorf("enqueuing the %s notification of run %s for sink %s: %w", ev.Kind, ev.Run, name, err)
	}
	it, err := ob.sp.Add(ctx, data)
	if err != nil {
		return fmt.Errorf("enqueuing the %s notification of run %s for sink %s: %w", ev.Kind, ev.Run, name, err)
	}
	s.admit(entry{id: it.ID, ev: *ev, added: it.Added}, time.Now())
	if f := ob.metrics.Queued; f != nil {
		f(name)
	}
	return nil
}

// Run delivers queued messages, one sink's independently of another's,
// until ctx ends; what is unacknowledged then stays on disk for the next
// Open. Call it once.
func (ob *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range ob.senders {
		wg.Go(func() { s.run(ctx) })
	}
	wg.Wait()
}

// Pending returns the number of (event, sink) pairs not yet acknowledged
// or given up.
func (ob *Outbox) Pending() int { return ob.sp.Stats().Pending }

// Close writes what is pending to disk and releases the outbox; call it
// after Run has returned.
func (ob *Outbox) Close() error {
	if err := ob.sp.Close(); err != nil {
		return fmt.Errorf("closing the notification outbox: %w", err)
	}
	return nil
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
