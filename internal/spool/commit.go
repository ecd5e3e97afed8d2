package spool

import (
	"context"
	"fmt"
	"time"
)

// batch is what one commit writes, as one frame, and who waits for it.
type batch struct {
	buf   []byte // a frame: room for its header, then the records
	adds  []added
	dones []uint64
	done  chan struct{} // closed once the batch is committed or failed
	err   error         // why it failed; set before done is closed
}

// added is an add record in a batch.
type added struct {
	id    uint64
	off   int // of the data in buf
	n     int
	added int64
}

func (s *Spool) newBatchLocked() *batch {
	buf := s.spare
	s.spare = nil
	return &batch{buf: startFrame(buf), done: make(chan struct{})}
}

// signal wakes the committer, or leaves a wake-up for it.
func (s *Spool) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Add appends data, at most MaxData bytes, and returns its item once it is
// durable. Adds that arrive while a commit is syncing are written and
// synced together by the next one. If ctx ends first, Add returns its
// error, but the record may still be committed and then stays pending: the
// next Open returns it. After a failed commit every Add fails; Close and
// Open the spool again.
func (s *Spool) Add(ctx context.Context, data []byte) (Item, error) {
	if len(data) > MaxData {
		return Item{}, fmt.Errorf("adding to spool: %d bytes of data: %w", len(data), ErrTooLarge)
	}
	if err := context.Cause(ctx); err != nil {
		return Item{}, fmt.Errorf("adding to spool: %w", err)
	}
	need := addHeaderLen + len(data)
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return Item{}, fmt.Errorf("adding to spool: %w", ErrClosed)
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return Item{}, err
		}
		if frameEmpty(s.cur.buf) || len(s.cur.buf)+need <= maxBatchBytes {
			break
		}
		// The batch is full: wait for the committer to take it, so that
		// a burst of senders cannot pile up unbounded memory.
		taken := s.taken
		s.mu.Unlock()
		select {
		case <-taken:
		case <-ctx.Done():
			return Item{}, fmt.Errorf("adding to spool: %w", context.Cause(ctx))
		}
		s.mu.Lock()
	}
	id := s.nextID
	s.nextID++
	now := s.opts.now().UnixNano()
	b := s.cur
	var off int
	b.buf, off = appendAdd(b.buf, id, now, data)
	b.adds = append(b.adds, added{id: id, off: off, n: len(data), added: now})
	s.mu.Unlock()
	s.signal()

	select {
	case <-b.done:
	case <-ctx.Done():
		select {
		case <-b.done: // committed meanwhile after all
		default:
			return Item{}, fmt.Errorf("adding to spool: %w (item %d may still be committed)", context.Cause(ctx), id)
		}
	}
	if b.err != nil {
		return Item{}, b.err
	}
	return Item{ID: id, Added: time.Unix(0, now).UTC(), Data: data}, nil
}

// Done marks a pending item finished, with a short outcome (at most
// MaxOutcome bytes, such as a run id and status) kept on disk beside it.
// It does not wait for the disk: its record goes into the next commit —
// Done starts one if the committer is idle — or at the latest into Close's.
// A Done lost to a crash leaves the item pending, and the next Open returns
// it again. Done returns ErrNotPending for an id that is not pending.
func (s *Spool) Done(id uint64, outcome []byte) error {
	if len(outcome) > MaxOutcome {
		return fmt.Errorf("marking item %d done: %d bytes of outcome: %w", id, len(outcome), ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch it := s.items[id]; {
	case s.closed:
		return fmt.Errorf("marking item %d done: %w", id, ErrClosed)
	case s.err != nil:
		return s.err
	case it == nil || it.done:
		return fmt.Errorf("marking item %d done: %w", id, ErrNotPending)
	default:
		it.done = true
	}
	s.npend--
	s.cur.buf = appendDone(s.cur.buf, id, outcome)
	s.cur.dones = append(s.cur.dones, id)
	s.signal()
	return nil
}

// run is the committer: it takes the batch being filled, leaving a fresh
// one for the Adds that arrive meanwhile, commits it, and wakes its
// waiters, until Close and nothing is left.
func (s *Spool) run() {
	defer close(s.exited)
	for {
		s.mu.Lock()
		for frameEmpty(s.cur.buf) && !s.closed {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if frameEmpty(s.cur.buf) {
			s.mu.Unlock()
			return
		}
		if s.shortLocked() {
			s.mu.Unlock()
			s.gather()
			s.mu.Lock()
		}
		b := s.cur
		s.cur = s.newBatchLocked()
		close(s.taken)
		s.taken = make(chan struct{})
		err := s.err
		s.mu.Unlock()

		if err == nil {
			err = s.commit(b)
		}
		b.err = err
		close(b.done)
	}
}

// shortLocked reports whether the batch lacks adds that are likely to
// come soon: those of the callers the last commit released. Senders that
// add again as soon as Add returns — an HTTP client posting alert after
// alert — otherwise settle into two groups that alternate, each group's
// adds queueing while the other's are synced, and every commit carries
// only half of them.
func (s *Spool) shortLocked() bool {
	return len(s.cur.adds) < s.expect && !s.closed && len(s.cur.buf) < maxBatchBytes/2
}

// gather waits until the batch is no longer short, for at most half the
// recent fsync time: a caller that does not come back costs that much
// latency, not a commit's worth of throughput.
func (s *Spool) gather() {
	t := time.NewTimer(min(s.syncAvg/2, maxGather))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		short := s.shortLocked()
		s.mu.Unlock()
		if !short {
			return
		}
	}
}

// maxGather bounds how long gather waits, whatever fsync takes.
const maxGather = 2 * time.Millisecond

// commit writes b with one write and syncs it with one fdatasync, then
// makes its adds pending and its dones final.
func (s *Spool) commit(b *batch) error {
	if s.activeSize >= s.opts.segmentBytes {
		if err := s.roll(); err != nil {
			return s.fail(fmt.Errorf("starting a segment: %w", err))
		}
	}
	sealFrame(b.buf)
	at := s.activeSize
	if _, err := s.f.Write(b.buf); err != nil {
		return s.fail(err)
	}
	start := time.Now()
	if err := datasync(s.f); err != nil {
		return s.fail(err)
	}
	synced := time.Since(start)
	s.activeSize += int64(len(b.buf))
	if s.syncAvg == 0 {
		s.syncAvg = synced
	}
	s.syncAvg += (synced - s.syncAvg) / 8

	s.mu.Lock()
	active := s.segs[len(s.segs)-1]
	active.size = s.activeSize
	for _, a := range b.adds {
		it := &item{n: a.n, added: a.added}
		it.enter(active, at+int64(a.off))
		s.items[a.id] = it
		s.npend++
	}
	for _, id := range b.dones {
		s.items[id].leave()
		delete(s.items, id)
	}
	// The callers released now, and those already queued, make the next
	// batch.
	s.expect = len(b.adds) + len(s.cur.adds)
	s.stats.Commits++
	s.stats.Adds += uint64(len(b.adds))
	s.stats.Dones += uint64(len(b.dones))
	s.stats.SyncTime += synced
	if cap(b.buf) <= 2*maxBatchBytes {
		s.spare = b.buf
	}
	dead := s.collectLocked()
	s.mu.Unlock()
	s.remove(dead)
	return nil
}

// fail makes err stop the spool and returns it.
func (s *Spool) fail(err error) error {
	err = fmt.Errorf("committing to spool %s: %w", s.dir, err)
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.opts.log.Error("spool: commit failed; no more adds until it is reopened", "err", err)
	return err
}
