package notify

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// maxDigest bounds the events of one digest; a longer storm sends more.
const maxDigest = 100

// entry is one outbox record in memory.
type entry struct {
	id    uint64
	ev    Event
	added time.Time
}

// pending is a message being delivered to one sink.
type pending struct {
	entries  []entry
	msg      *Message
	attempts int
	next     time.Time // when to try (again)
	oldest   time.Time // the oldest entry's enqueue time: GiveUpAfter counts from it
}

// batch gathers the events of a storm until flushAt.
type batch struct {
	entries []entry
	flushAt time.Time
}

// sender delivers one sink's messages, one at a time: a sink that hangs
// delays only its own.
type sender struct {
	sink     Sink
	settings settings
	opts     options
	done     func(id uint64, outcome string)
	wake     chan struct{}

	mu     sync.Mutex
	recent []time.Time // the last settings.after admissions
	queue  []*pending
	batch  *batch
}

// admit queues e: alone, or in the storm's digest when more than
// settings.after events came within settings.window.
func (s *sender) admit(e entry, now time.Time) {
	s.mu.Lock()
	after := s.settings.after
	storm := len(s.recent) == after && now.Sub(s.recent[0]) < s.settings.window
	if len(s.recent) == after {
		copy(s.recent, s.recent[1:])
		s.recent[after-1] = now
	} else {
		s.recent = append(s.recent, now)
	}
	switch {
	case !storm:
		s.queue = append(s.queue, s.message([]entry{e}, false, now))
	default:
		if s.batch == nil {
			s.batch = &batch{flushAt: now.Add(s.settings.window)}
		}
		s.batch.entries = append(s.batch.entries, e)
		if len(s.batch.entries) == maxDigest {
			s.flushLocked(now)
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) flushLocked(now time.Time) {
	b := s.batch
	s.batch = nil
	s.queue = append(s.queue, s.message(b.entries, len(b.entries) > 1, now))
}

func (s *sender) message(entries []entry, digest bool, now time.Time) *pending {
	events := make([]Event, len(entries))
	oldest := entries[0].added
	for i, e := range entries {
		events[i] = e.ev
		if e.added.Before(oldest) {
			oldest = e.added
		}
	}
	m := newMessage(s.sink.Name(), events, digest, s.settings.window)
	return &pending{entries: entries, msg: m, next: now, oldest: oldest}
}

// due returns the message to send now, or how long to wait for one.
func (s *sender) due(now time.Time) (*pending, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.batch != nil && !now.Before(s.batch.flushAt) {
		s.flushLocked(now)
	}
	wait := time.Hour
	if s.batch != nil {
		wait = s.batch.flushAt.Sub(now)
	}
	var first *pending
	for _, p := range s.queue {
		if first == nil || p.next.Before(first.next) {
			first = p
		}
	}
	if first != nil && !now.Before(first.next) {
		return first, 0
	}
	if first != nil {
		wait = min(wait, first.next.Sub(now))
	}
	return nil, wait
}

func (s *sender) run(ctx context.Context) {
	for ctx.Err() == nil {
		p, wait := s.due(time.Now())
		if p != nil {
			s.attempt(ctx, p)
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// attempt sends p once, and then marks it done, schedules its retry, or
// gives it up.
func (s *sender) attempt(ctx context.Context, p *pending) {
	name, log, m := s.sink.Name(), s.opts.log, s.opts.metrics
	err := s.sink.Send(ctx, p.msg)
	if err != nil && ctx.Err() != nil {
		return // shutting down: the message stays on disk for the next Open
	}
	now := time.Now()
	if err == nil {
		s.remove(p, "sent "+p.msg.DeliveryID)
		log.Debug("notification sent", "sink", name, "delivery", p.msg.DeliveryID, "events", len(p.entries))
		if m.Sent != nil {
			m.Sent(name, len(p.entries))
		}
		return
	}
	p.attempts++
	if m.Failed != nil {
		m.Failed(name)
	}
	if now.Sub(p.oldest) >= s.settings.giveUpAfter {
		s.remove(p, "given up "+p.msg.DeliveryID)
		log.Error("notification given up", "sink", name, "delivery", p.msg.DeliveryID,
			"attempts", p.attempts, "runs", runs(p), "held", held(p), "error", err)
		if m.GivenUp != nil {
			m.GivenUp(name, len(p.entries))
		}
		return
	}
	delay := backoff(p.attempts, s.opts.minBackoff, s.opts.maxBackoff)
	s.mu.Lock()
	p.next = now.Add(delay)
	s.mu.Unlock()
	log.Warn("notification not delivered, will retry", "sink", name, "delivery", p.msg.DeliveryID,
		"attempt", p.attempts, "retryIn", delay.Round(time.Millisecond), "error", err)
}

func (s *sender) remove(p *pending, outcome string) {
	s.mu.Lock()
	s.queue = slices.DeleteFunc(s.queue, func(q *pending) bool { return q == p })
	s.mu.Unlock()
	for _, e := range p.entries {
		s.done(e.id, outcome)
	}
}

// backoff is the delay after the n-th failed attempt: min doubled n-1
// times, at most 4/5 of max, plus up to a quarter of itself at random so
// that messages failed together are not retried together; never under
// min nor over max.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi*4/5)
	d = max(d, lo)
	d += rand.N(d/4 + 1)
	return min(d, max(hi, lo))
}

func runs(p *pending) []string {
	r := make([]string, len(p.entries))
	for i, e := range p.entries {
		r[i] = e.ev.Run
	}
	return r
}

func held(p *pending) int {
	n := 0
	for _, e := range p.entries {
		if e.ev.Kind == KindHeld {
			n++
		}
	}
	return n
}
