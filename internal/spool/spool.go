package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"kir.dev/kir/internal/durable"
)

// Limits on what Add and Done accept.
const (
	// MaxData is the largest record Add accepts.
	MaxData = 1 << 20
	// MaxOutcome is the largest outcome Done accepts.
	MaxOutcome = 4 << 10
	// DefaultSegmentBytes is the segment size unless WithSegmentBytes says
	// otherwise.
	DefaultSegmentBytes = 64 << 20
	// MinSegmentBytes is the smallest segment size WithSegmentBytes takes.
	MinSegmentBytes = 4 << 10
)

// maxBatchBytes bounds one commit: an Add that would make the batch larger
// waits for the next, unless the batch is empty.
const maxBatchBytes = 1 << 20

// Errors callers tell apart; the errors returned wrap them.
var (
	// ErrLocked is returned by Open while another Open, in this process
	// or another, holds the spool.
	ErrLocked = errors.New("spool is locked by another Open")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("spool is closed")
	// ErrTooLarge is returned for data larger than MaxData or an outcome
	// larger than MaxOutcome.
	ErrTooLarge = errors.New("too large")
	// ErrNotPending is returned by Done for an id that is not pending: one
	// already done, or never added.
	ErrNotPending = errors.New("item is not pending")
	// ErrVersion is returned by Open for a segment in a format version
	// this package does not know, written by a newer kir. Open leaves it
	// untouched.
	ErrVersion = errors.New("unknown spool format version")
)

// CorruptError reports damage a crash cannot cause: anywhere in a sealed
// segment, or in the last segment before an intact frame. Open refuses to
// go on rather than drop the acknowledged records around it.
type CorruptError struct {
	// Path is the segment file.
	Path string
	// Offset is where in it the damaged frame or record starts.
	Offset int64
	// Err says what is wrong there.
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s:%d: corrupt spool: %v", e.Path, e.Offset, e.Err)
}

// Unwrap returns what is wrong.
func (e *CorruptError) Unwrap() error { return e.Err }

// Item is one record of the spool.
type Item struct {
	// ID identifies the item; ids increase in the order of Add, across
	// restarts, starting at 1. Only the id of a record that a crash tore,
	// which no Add had returned, can be handed out again.
	ID uint64
	// Added is when Add was called, in UTC, to the nanosecond.
	Added time.Time
	// Data is what was added. From Add it is the caller's slice.
	Data []byte
}

// Stats is a snapshot of the spool's counters, for metrics. Records per
// commit is (Adds+Dones)/Commits.
type Stats struct {
	// Pending is the number of items added and not done.
	Pending int
	// Segments and DiskBytes are the segment files and their total size.
	Segments  int
	DiskBytes int64
	// Commits counts write+fsync rounds since Open; Adds and Dones the
	// records they committed, and Moved the items compaction copied
	// forward.
	Commits, Adds, Dones, Moved uint64
	// SyncTime is the time spent in fsync since Open.
	SyncTime time.Duration
}

type options struct {
	now          func() time.Time
	log          *slog.Logger
	segmentBytes int64
}

// Option configures Open.
type Option func(*options)

// WithClock makes the spool stamp items with now instead of time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithLogger makes the spool report what it repairs and what fails in the
// background, such as a torn tail truncated by Open. The spool is silent
// by default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithSegmentBytes sets the size at which the spool starts a new segment
// (DefaultSegmentBytes unless set; at least MinSegmentBytes). Compaction
// works per segment, so it also sets how much garbage can sit on disk.
func WithSegmentBytes(n int64) Option {
	return func(o *options) { o.segmentBytes = n }
}

// Spool is an open spool. Its methods are safe for concurrent use.
type Spool struct {
	dir  string
	opts options
	lock *os.File

	// Owned by the committer goroutine (and by Open before it starts).
	f          *os.File // the active segment
	activeSize int64
	syncAvg    time.Duration // moving average of fdatasync

	mu     sync.Mutex
	cur    *batch        // being filled
	taken  chan struct{} // closed when the committer takes cur
	items  map[uint64]*item
	npend  int // items not done
	nextID uint64
	segs   []*segment // oldest first; the last is active
	stats  Stats      // counters only
	spare  []byte     // a committed batch's buffer, for reuse
	expect int        // adds the next batch is likely to get; see shortLocked
	closed bool
	// err stops every later commit once a write or fsync failed: after a
	// failed fsync Linux may have dropped the dirty pages and cleared the
	// error, so nothing written since can be trusted. Close and Open again.
	err error

	wake   chan struct{} // cap 1: the committer has work or must stop
	exited chan struct{} // closed when the committer returns
}

// Open opens the spool in dir, creating dir (mode 0700) if needed, and
// returns it with the items still pending — added and not done — by id.
// It returns ErrLocked while another Open holds the spool, and a
// *CorruptError for damage a crash cannot cause. A torn tail left by a
// crash is truncated and logged (WithLogger). Open starts a new segment,
// compacting the old ones as a rollover does.
func Open(dir string, opts ...Option) (*Spool, []Item, error) {
	o := options{now: time.Now, segmentBytes: DefaultSegmentBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.segmentBytes < MinSegmentBytes {
		return nil, nil, fmt.Errorf("opening spool: segment size %d below the minimum %d", o.segmentBytes, MinSegmentBytes)
	}
	dir = filepath.Clean(dir)
	s, items, err := open(dir, o)
	if err != nil {
		return nil, nil, fmt.Errorf("opening spool %s: %w", dir, err)
	}
	return s, items, nil
}

func open(dir string, o options) (_ *Spool, _ []Item, err error) {
	if err := mkdirDurable(dir); err != nil {
		return nil, nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			unlock(lock)
			lock.Close()
		}
	}()
	if err := tryLock(lock); err != nil {
		return nil, nil, err
	}

	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	r := &replay{log: o.log, items: make(map[uint64]*item), next: 1}
	live := segs[:0]
	for i, seg := range segs {
		kept, err := r.segment(seg, i == len(segs)-1)
		if err != nil {
			return nil, nil, err
		}
		if kept {
			live = append(live, seg)
		}
	}
	items, err := r.pending()
	if err != nil {
		return nil, nil, err
	}
	r.buf = nil

	s := &Spool{
		dir:    dir,
		opts:   o,
		lock:   lock,
		taken:  make(chan struct{}),
		items:  r.items,
		npend:  len(r.items),
		nextID: r.next,
		segs:   live,
		wake:   make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	s.cur = s.newBatchLocked()
	if err := s.roll(); err != nil {
		return nil, nil, err
	}
	go s.run()
	return s, items, nil
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending = s.npend
	st.Segments = len(s.segs)
	for _, seg := range s.segs {
		st.DiskBytes += seg.size
	}
	return st
}

// Close commits what Add and Done queued, syncs it, and releases the
// spool. Adds waiting for room in a batch return ErrClosed. It returns the
// error that stopped the spool, if a commit failed. Later calls do nothing.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.taken) // wakes Adds waiting for room, to see closed
	s.taken = make(chan struct{})
	s.mu.Unlock()
	s.signal()
	<-s.exited

	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing spool %s: %w", s.dir, cerr)
	}
	if uerr := unlock(s.lock); uerr != nil && err == nil {
		err = fmt.Errorf("closing spool %s: %w", s.dir, uerr)
	}
	s.lock.Close()
	return err
}

// mkdirDurable creates dir and its missing parents, fsyncing each new
// directory's parent, so that a power loss cannot take the directory and
// the acknowledged records in it away.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return durable.SyncDir(filepath.Dir(dir))
}
