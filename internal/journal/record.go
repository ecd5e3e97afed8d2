package journal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Record is one line of a journal.
type Record struct {
	// Seq is the record's position in the journal, counting from 1.
	Seq int `json:"seq"`
	// Time is when the record was appended, in UTC.
	Time time.Time `json:"time"`
	// Type says what happened, e.g. "step.start"; never empty.
	Type string `json:"type"`
	// Data is the JSON of what Append was given; nil if it was given nil.
	Data json.RawMessage `json:"data,omitempty"`
	// Prev is the hex SHA-256 of the previous line's bytes (without the
	// newline); "" for the first record.
	Prev string `json:"prev,omitempty"`

	// line is the record as stored, kept so that Hash covers the bytes on
	// disk rather than a re-encoding of them.
	line []byte
}

// Hash returns the hex SHA-256 of the record's line, which is what the next
// record's Prev holds. For a record from Append, Read or Reopen it hashes the
// stored bytes. For a record built by hand it hashes the line Append would
// have written, or returns "" if the record cannot be encoded.
func (r Record) Hash() string {
	line := r.line
	if line == nil {
		var err error
		if line, err = json.Marshal(r); err != nil {
			return ""
		}
	}
	return hashLine(line)
}

func hashLine(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// ReadResult is what Read finds in a journal.
type ReadResult struct {
	// Records are the intact records, in order.
	Records []Record
	// Torn reports that a last line without its newline was skipped: what
	// a writer killed mid-append leaves, or, while a writer is active, an
	// append still in progress.
	Torn bool
}

// CorruptError reports a line before the last that is not the record the
// journal requires there: not a record, a wrong seq or a broken hash chain.
// A crash cannot cause it; it means the file was damaged or tampered with.
type CorruptError struct {
	// Path is the journal file.
	Path string
	// Line is the 1-based number of the offending line.
	Line int
	// Err says what is wrong with it.
	Err error
}

func (e *CorruptError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }

// Unwrap returns what is wrong with the line.
func (e *CorruptError) Unwrap() error { return e.Err }

// scanned is a journal file checked line by line.
type scanned struct {
	ReadResult
	// end is the offset just past the last intact record, where Reopen
	// truncates a torn line.
	end int64
}

// scan reads a journal from its start. Each record is written, newline
// included, by one write call, so a crash mid-append leaves a last line
// without its newline: that line is torn, and ignored. A complete line
// that is not the next record can only come from damage or tampering, and
// is an error wherever it is.
func scan(r io.Reader, path string) (scanned, error) {
	var (
		s    scanned
		br   = bufio.NewReader(r)
		prev string
	)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err != nil && err != io.EOF {
			return scanned{}, err
		}
		if err == io.EOF { // no newline: the write did not complete
			s.Torn = true
			break
		}
		rec, perr := parseLine(line[:len(line)-1], n, prev)
		if perr != nil {
			return scanned{}, &CorruptError{Path: path, Line: n, Err: perr}
		}
		s.Records = append(s.Records, rec)
		s.end += int64(len(line))
		prev = hashLine(rec.line)
	}
	return s, nil
}

// parseLine decodes line n strictly and checks it continues a chain whose
// last line hashes to prev.
func parseLine(line []byte, n int, prev string) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("not a record: %w", err)
	}
	if dec.InputOffset() != int64(len(line)) {
		return Record{}, errors.New("not a record: data after the JSON object")
	}
	switch {
	case rec.Seq != n:
		return Record{}, fmt.Errorf("seq is %d, want %d", rec.Seq, n)
	case rec.Type == "":
		return Record{}, errors.New("record has no type")
	case n == 1 && rec.Prev != "":
		return Record{}, fmt.Errorf("first record has prev %q, want none", rec.Prev)
	case rec.Prev != prev:
		return Record{}, fmt.Errorf("prev %q is not the hash of line %d (%s)", rec.Prev, n-1, prev)
	}
	rec.line = line
	return rec, nil
}
