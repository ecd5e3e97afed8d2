package journal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"kir.dev/kir/internal/durable"
)

// Journals outside a Store: an evidence bundle keeps its custody log in the
// journal format under a fixed name (custody.log), which no Store id can
// give. The file functions below keep every guarantee of the Store's: one
// write and one fsync per record, an exclusive flock(2) per writer, torn
// last lines skipped by readers and truncated by ReopenFile.

// CreateFile starts a journal in the file path, which must not exist, and
// returns its writer. Of opts, WithClock and Lazy apply. The file (mode
// 0600) is created exclusively and, unless Lazy, its directory fsynced.
func CreateFile(path string, opts ...Option) (*Writer, error) {
	o := optionsOf(opts)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating journal %s: %w", path, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("creating journal: %w", err)
	}
	if err := tryLock(f, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("creating journal %s: %w", path, err)
	}
	if !o.lazy {
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("creating journal %s: %w", path, err)
		}
	}
	return &Writer{id: path, now: o.now, lazy: o.lazy, f: f}, nil
}

// ReopenFile opens the journal in the file path to append more records, as
// Store.Reopen does, and returns its writer with the records already in
// it. Of opts, WithClock and Lazy apply.
func ReopenFile(path string, opts ...Option) (*Writer, []Record, error) {
	f, err := openJournal(path, os.O_RDWR|os.O_APPEND)
	if err != nil {
		return nil, nil, fmt.Errorf("reopening journal %s: %w", path, err)
	}
	w, recs, err := reopen(f, path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reopening journal %s: %w", path, err)
	}
	o := optionsOf(opts)
	w.id, w.now, w.lazy = path, o.now, o.lazy
	return w, recs, nil
}

// ReadFrom reads a journal from r, as Store.Read reads one from its file;
// name stands for it in errors. Unlike Read it does not give up at a
// corrupt line: it returns the intact records before it together with the
// *CorruptError, so that a reader can still show what precedes the damage.
func ReadFrom(r io.Reader, name string) (ReadResult, error) {
	var (
		res  ReadResult
		br   = bufio.NewReader(r)
		prev string
	)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return res, nil
		}
		if err != nil && err != io.EOF {
			return res, err
		}
		if err == io.EOF { // no newline: the write did not complete
			res.Torn = true
			return res, nil
		}
		rec, perr := parseLine(line[:len(line)-1], n, prev)
		if perr != nil {
			return res, &CorruptError{Path: name, Line: n, Err: perr}
		}
		res.Records = append(res.Records, rec)
		prev = hashLine(rec.line)
	}
}

// optionsOf applies opts to a Store's defaults, for the file journals.
func optionsOf(opts []Option) *Store {
	s := &Store{now: time.Now}
	for _, opt := range opts {
		opt(s)
	}
	return s
}
