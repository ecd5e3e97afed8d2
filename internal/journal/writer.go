package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"kir.dev/kir/internal/durable"
)

// Writer appends records to one journal and holds its lock until Close.
// Its methods are safe for concurrent use.
type Writer struct {
	id   string
	now  func() time.Time
	lazy bool // no fsync per record: see Lazy

	mu   sync.Mutex
	f    *os.File // nil once closed
	seq  int      // of the last record
	prev string   // hash of the last line
	// err stops every later Append once a write or fsync failed: the file
	// may then end in a partial line, and after a failed fsync Linux may
	// have dropped the dirty pages and cleared the error, so appending more
	// would bury a hole in the chain. Close and Reopen to go on.
	err error
}

// Create starts journal id and returns its writer. The file is created
// exclusively and the directory fsynced, so the journal survives a crash
// even before its first record. A journal without a complete record, which
// a crash between its creation and its first record leaves, is taken over.
// It returns ErrExists if the journal exists with a record in it, or
// another writer holds it.
func (s *Store) Create(id string) (*Writer, error) {
	path, err := s.path(id)
	if err != nil {
		return nil, fmt.Errorf("creating journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		w, terr := s.takeOver(id, path)
		if !errors.Is(terr, ErrNotFound) {
			return w, terr
		}
		// Discarded meanwhile: create it after all.
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating journal %s: %w", id, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("creating journal %s: %w", id, err)
	}
	// A Reopen, or a Create taking the empty file over, can only win this
	// race in the instant between the create and the lock; the file is
	// then its journal, so leave it be.
	if err := tryLock(f, true); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			err = ErrExists
		}
		return nil, fmt.Errorf("creating journal %s: %w", id, err)
	}
	if err := durable.SyncDir(s.dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("creating journal %s: %w", id, err)
	}
	return &Writer{id: id, now: s.now, lazy: s.lazy, f: f}, nil
}

// takeOver returns a writer of journal id, which exists at path, if it
// holds no complete record (a torn line is truncated away): a run whose
// start was never recorded did nothing. It returns ErrExists if the
// journal has a record or another writer holds it, and ErrNotFound if it
// is gone (all wrapped).
func (s *Store) takeOver(id, path string) (*Writer, error) {
	f, err := openJournal(path, os.O_RDWR|os.O_APPEND)
	if err != nil {
		return nil, fmt.Errorf("creating journal %s: %w", id, err)
	}
	w, recs, err := reopen(f, path)
	switch {
	case errors.Is(err, ErrLocked):
		err = ErrExists
	case err == nil && len(recs) > 0:
		err = ErrExists
	}
	if err == nil {
		// The process that created it may have died before its directory
		// entry was durable.
		err = durable.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("creating journal %s: %w", id, err)
	}
	w.id, w.now, w.lazy = id, s.now, s.lazy
	return w, nil
}

// Reopen opens journal id to append more records, as when resuming a run,
// and returns its writer with the records already in it. It returns
// ErrLocked if another writer holds the journal and ErrNotFound if there is
// none. A torn last line is truncated away, durably, before any append.
func (s *Store) Reopen(id string) (*Writer, []Record, error) {
	path, err := s.path(id)
	if err != nil {
		return nil, nil, fmt.Errorf("reopening journal: %w", err)
	}
	f, err := openJournal(path, os.O_RDWR|os.O_APPEND)
	if err != nil {
		return nil, nil, fmt.Errorf("reopening journal %s: %w", id, err)
	}
	w, recs, err := reopen(f, path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reopening journal %s: %w", id, err)
	}
	w.id, w.now, w.lazy = id, s.now, s.lazy
	return w, recs, nil
}

func reopen(f *os.File, path string) (*Writer, []Record, error) {
	// Lock before reading, so that no other writer appends behind our back.
	if err := tryLock(f, true); err != nil {
		return nil, nil, err
	}
	// A writer that discarded the journal between our open and our lock
	// left us its unlinked file.
	if opened, err := f.Stat(); err != nil {
		return nil, nil, err
	} else if now, err := os.Stat(path); err != nil || !os.SameFile(opened, now) {
		return nil, nil, ErrNotFound
	}
	sc, err := scan(f, path)
	if err != nil {
		return nil, nil, err
	}
	if sc.Torn {
		if err := f.Truncate(sc.end); err != nil {
			return nil, nil, fmt.Errorf("truncating torn last line: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, nil, fmt.Errorf("truncating torn last line: %w", err)
		}
	}
	w := &Writer{f: f, seq: len(sc.Records)}
	if n := len(sc.Records); n > 0 {
		w.prev = sc.Records[n-1].Hash()
	}
	return w, sc.Records, nil
}

// Append adds a record of type typ with data encoded as JSON (none if data
// is nil), and returns it once it is on disk. If Append fails, the record
// may or may not be in the journal, and the Writer refuses further appends.
func (w *Writer) Append(typ string, data any) (Record, error) {
	return w.append(typ, data, !w.lazy)
}

// AppendUnsynced adds a record like Append but returns without waiting for
// the disk: the next synced Append, or Sync, makes it durable with every
// record before it. For a record a crash may lose because it can be
// derived again from the records that are durable.
func (w *Writer) AppendUnsynced(typ string, data any) (Record, error) {
	return w.append(typ, data, false)
}

func (w *Writer) append(typ string, data any, sync bool) (Record, error) {
	if typ == "" {
		return Record{}, fmt.Errorf("appending to journal %s: empty record type", w.id)
	}
	var raw json.RawMessage
	if data != nil {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return Record{}, fmt.Errorf("appending to journal %s: encoding %s data: %w", w.id, typ, err)
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return Record{}, fmt.Errorf("appending to journal %s: %w", w.id, os.ErrClosed)
	}
	if w.err != nil {
		return Record{}, w.err
	}
	rec := Record{Seq: w.seq + 1, Time: w.now().UTC(), Type: typ, Data: raw, Prev: w.prev}
	line, err := json.Marshal(rec)
	if err != nil {
		return Record{}, fmt.Errorf("appending to journal %s: %w", w.id, err)
	}
	// One write of the whole line, newline included, so that a crash tears
	// at most this line and never leaves a complete line without its end.
	if _, err := w.f.Write(append(line, '\n')); err != nil {
		w.err = fmt.Errorf("appending to journal %s: %w", w.id, err)
		return Record{}, w.err
	}
	if sync {
		if err := w.f.Sync(); err != nil {
			w.err = fmt.Errorf("appending to journal %s: %w", w.id, err)
			return Record{}, w.err
		}
	}
	rec.line = line
	w.seq, w.prev = rec.Seq, hashLine(line)
	return rec, nil
}

// Sync makes every record appended so far durable; a Lazy writer's
// caller calls it before relying on them.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("syncing journal %s: %w", w.id, os.ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("syncing journal %s: %w", w.id, err)
		return w.err
	}
	return nil
}

// Discard deletes the journal and closes the writer: for a run that
// changed nothing and turned out not to be its writer's to run. The file
// goes while the writer still holds its lock; a Reopen that opened it
// before then finds it gone once it has the lock (ErrNotFound).
func (w *Writer) Discard() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("discarding journal %s: %w", w.id, os.ErrClosed)
	}
	path := w.f.Name()
	err := os.Remove(path)
	if err == nil {
		err = durable.SyncDir(filepath.Dir(path))
	}
	unlock(w.f)
	err = errors.Join(err, w.f.Close())
	w.f = nil
	if err != nil {
		return fmt.Errorf("discarding journal %s: %w", w.id, err)
	}
	return nil
}

// Close releases the journal. Later calls do nothing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	unlock(w.f)
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("closing journal %s: %w", w.id, err)
	}
	return nil
}
