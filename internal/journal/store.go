package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"kir.dev/kir/internal/durable"
)

// Errors callers tell apart; the errors returned wrap them.
var (
	// ErrExists is returned by Create for an id that is already a journal.
	ErrExists = errors.New("journal already exists")
	// ErrLocked is returned when another writer, in this process or
	// another, holds the journal.
	ErrLocked = errors.New("journal is locked by another writer")
	// ErrNotFound is returned for an id that is not a journal.
	ErrNotFound = errors.New("journal not found")
	// ErrInvalidID is returned for an id that does not match
	// ^[a-z0-9][a-z0-9._-]{0,127}$.
	ErrInvalidID = errors.New("invalid journal id")
)

// idPattern keeps ids from naming anything but a file in the store: no
// separators, no leading dot.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

const ext = ".jsonl"

// Store is a directory of journals. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	now  func() time.Time
	lazy bool
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes the Store's writers stamp records with now instead of
// time.Now, so that tests can write predictable journals.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// Lazy makes writers leave each record in the page cache rather than
// fsync it: the caller calls Writer.Sync before it relies on what was
// written (an evidence bundle does so at the end of every step). A killed
// process loses nothing; a machine that loses power may lose what was
// appended since the last Sync, at most tearing the last line.
func Lazy() Option {
	return func(s *Store) { s.lazy = true }
}

// Open returns the Store in dir, creating dir (mode 0700) if needed.
func Open(dir string, opts ...Option) (*Store, error) {
	s := &Store{dir: filepath.Clean(dir), now: time.Now}
	for _, opt := range opts {
		opt(s)
	}
	if err := mkdirDurable(s.dir); err != nil {
		return nil, fmt.Errorf("opening journal store: %w", err)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Read returns the records of journal id without locking it, so it works
// while a writer appends. A torn last line is skipped and reported as
// ReadResult.Torn; damage before it is a *CorruptError.
func (s *Store) Read(id string) (ReadResult, error) {
	path, err := s.path(id)
	if err != nil {
		return ReadResult{}, fmt.Errorf("reading journal: %w", err)
	}
	f, err := openJournal(path, os.O_RDONLY)
	if err != nil {
		return ReadResult{}, fmt.Errorf("reading journal %s: %w", id, err)
	}
	defer f.Close()
	sc, err := scan(f, path)
	if err != nil {
		return ReadResult{}, fmt.Errorf("reading journal %s: %w", id, err)
	}
	return sc.ReadResult, nil
}

// List returns the ids of all journals, sorted. Files in the directory that
// are not journals are ignored.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing journals: %w", err)
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ext)
		if ok && e.Type().IsRegular() && idPattern.MatchString(id) {
			ids = append(ids, id)
		}
	}
	// Sorted by id, not by file name: the extension would put "a-b" before "a".
	slices.Sort(ids)
	return ids, nil
}

// Active reports whether a live writer holds journal id. It probes with a
// shared lock that it drops at once; a Reopen racing the probe can get
// ErrLocked and should retry.
func (s *Store) Active(id string) (bool, error) {
	path, err := s.path(id)
	if err != nil {
		return false, fmt.Errorf("checking journal: %w", err)
	}
	f, err := openJournal(path, os.O_RDONLY)
	if err != nil {
		return false, fmt.Errorf("checking journal %s: %w", id, err)
	}
	defer f.Close() // closing drops the probe's lock
	switch err := tryLock(f, false); {
	case errors.Is(err, ErrLocked):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("checking journal %s: %w", id, err)
	}
	return false, nil
}

// Path returns the file of journal id, for readers that copy it (an
// evidence bundle carries its run's journal).
func (s *Store) Path(id string) (string, error) { return s.path(id) }

func (s *Store) path(id string) (string, error) {
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("%w %q: want %s", ErrInvalidID, id, idPattern)
	}
	return filepath.Join(s.dir, id+ext), nil
}

// openJournal opens an existing journal, mapping its absence to ErrNotFound.
func openJournal(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// mkdirDurable creates dir and its missing parents, fsyncing each new
// directory's parent: otherwise a power loss could take the directory, and
// the journals in it, away after their appends were reported durable.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return durable.SyncDir(parent)
}
