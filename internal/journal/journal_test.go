package journal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"kir.dev/kir/internal/journal"
)

// sameRecords compares records including the stored line bytes, so a
// record from Append must match its reading byte for byte.
var sameRecords = cmp.AllowUnexported(journal.Record{})

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock returns a clock that advances one second per call.
func clock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

func newStore(t testing.TB) *journal.Store {
	t.Helper()
	s, err := journal.Open(t.TempDir(), journal.WithClock(clock()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fill creates journal id with n records of type "step" and data
// {"step":i}, and returns them.
func fill(t *testing.T, s *journal.Store, id string, n int) []journal.Record {
	t.Helper()
	w, err := s.Create(id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var recs []journal.Record
	for i := 1; i <= n; i++ {
		rec, err := w.Append("step", map[string]int{"step": i})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func path(s *journal.Store, id string) string { return filepath.Join(s.Dir(), id+".jsonl") }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	w, err := s.Create("run-1")
	if err != nil {
		t.Fatal(err)
	}
	appends := []struct {
		typ      string
		data     any
		wantData string
	}{
		{"run.start", map[string]string{"playbook": "isolate"}, `{"playbook":"isolate"}`},
		{"step.done", nil, ""},
		{"note", "<b>&</b>", `"\u003cb\u003e\u0026\u003c/b\u003e"`},
		{"raw", json.RawMessage(`{ "a" : [1, 2] }`), `{"a":[1,2]}`},
	}
	var written []journal.Record
	for i, a := range appends {
		rec, err := w.Append(a.typ, a.data)
		if err != nil {
			t.Fatal(err)
		}
		want := journal.Record{Seq: i + 1, Time: t0.Add(time.Duration(i) * time.Second), Type: a.typ}
		if a.wantData != "" {
			want.Data = json.RawMessage(a.wantData)
		}
		if i > 0 {
			want.Prev = written[i-1].Hash()
		}
		if diff := cmp.Diff(want, rec, cmpopts.IgnoreUnexported(journal.Record{})); diff != "" {
			t.Errorf("Append %d (-want +got):\n%s", i+1, diff)
		}
		// A record rebuilt from its fields hashes like the stored line:
		// the encoding is deterministic.
		if rebuilt := (journal.Record{Seq: rec.Seq, Time: rec.Time, Type: rec.Type, Data: rec.Data, Prev: rec.Prev}); rebuilt.Hash() != rec.Hash() {
			t.Errorf("Append %d: rebuilt record hashes to %s, stored line to %s", i+1, rebuilt.Hash(), rec.Hash())
		}
		written = append(written, rec)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	got, err := s.Read("run-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(journal.ReadResult{Records: written}, got, sameRecords); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(path(s, "run-1"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("journal file mode %v, want 0600", perm)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b", "journals")
	s, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", s.Dir(), dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("store directory mode %v, want 0700", perm)
	}
	if _, err := journal.Open(dir); err != nil {
		t.Errorf("opening an existing store: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.Open(file); err == nil {
		t.Error("Open of a regular file succeeded")
	}
}

func TestCreateExists(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	want := fill(t, s, "run-1", 2)
	if _, err := s.Create("run-1"); !errors.Is(err, journal.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	got, err := s.Read("run-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.Records, sameRecords); diff != "" {
		t.Errorf("journal changed by the failed Create (-want +got):\n%s", diff)
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"a", "0", "20260102t030405-isolate.pod_1", strings.Repeat("a", 128), "a.."} {
		t.Run("valid "+id, func(t *testing.T) {
			t.Parallel()
			w, err := newStore(t).Create(id)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
		})
	}
	invalid := []string{"", ".", "..", "../x", "a/b", "/x", ".hidden", "-a", "_a", "A", "run 1", "a\x00", "a\n", strings.Repeat("a", 129)}
	for _, id := range invalid {
		t.Run(fmt.Sprintf("invalid %q", id), func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			s, err := journal.Open(filepath.Join(parent, "store"))
			if err != nil {
				t.Fatal(err)
			}
			_, err1 := s.Create(id)
			_, _, err2 := s.Reopen(id)
			_, err3 := s.Read(id)
			_, err4 := s.Active(id)
			for i, err := range []error{err1, err2, err3, err4} {
				if !errors.Is(err, journal.ErrInvalidID) {
					t.Errorf("call %d: %v, want ErrInvalidID", i+1, err)
				}
			}
			// Nothing was created, in the store or next to it.
			for _, d := range []string{parent, s.Dir()} {
				entries, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				if d == parent && len(entries) != 1 || d == s.Dir() && len(entries) != 0 {
					t.Errorf("%s holds %v", d, entries)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	_, _, err1 := s.Reopen("missing")
	_, err2 := s.Read("missing")
	_, err3 := s.Active("missing")
	for i, err := range []error{err1, err2, err3} {
		if !errors.Is(err, journal.ErrNotFound) {
			t.Errorf("call %d: %v, want ErrNotFound", i+1, err)
		}
	}
}

// appendRaw appends b to a journal file by hand, as a crash could leave it.
func appendRaw(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestCreateTakesOverAJournalWithoutRecords: a crash between a journal's
// creation and its first record leaves it empty, or torn; Create takes it
// over, unless another writer holds it.
func TestCreateTakesOverAJournalWithoutRecords(t *testing.T) {
	t.Parallel()
	for name, left := range map[string]string{"empty": "", "torn": `{"seq":1,"time":"2026-01-0`} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			if err := os.WriteFile(path(s, "run-1"), []byte(left), 0o600); err != nil {
				t.Fatal(err)
			}
			w, err := s.Create("run-1")
			if err != nil {
				t.Fatalf("Create over a journal without records: %v", err)
			}
			if _, err := s.Create("run-1"); !errors.Is(err, journal.ErrExists) {
				t.Errorf("Create while the first writer holds it: %v, want ErrExists", err)
			}
			rec, err := w.Append("started", nil)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			got, err := s.Read("run-1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(journal.ReadResult{Records: []journal.Record{rec}}, got, sameRecords); diff != "" {
				t.Errorf("Read (-want +got):\n%s", diff)
			}
			if rec.Seq != 1 || rec.Prev != "" {
				t.Errorf("first record: seq %d prev %q, want 1 and none", rec.Seq, rec.Prev)
			}
		})
	}
}

func TestTornTail(t *testing.T) {
	t.Parallel()
	// next returns the line of a record following three others.
	next := func(seq int, prev string) []byte {
		b, _ := json.Marshal(journal.Record{Seq: seq, Time: t0, Type: "step", Prev: prev}) // cannot fail: no Data
		return b
	}
	tests := []struct {
		name string
		tail func(recs []journal.Record) []byte
	}{
		{"partial line", func([]journal.Record) []byte { return []byte(`{"seq":4,"time":"2026-01-0`) }},
		{"record without newline", func(r []journal.Record) []byte { return next(4, r[2].Hash()) }},
		{"zeros", func([]journal.Record) []byte { return make([]byte, 100) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			recs := fill(t, s, "run-1", 3)
			p := path(s, "run-1")
			intact, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			appendRaw(t, p, tt.tail(recs))

			got, err := s.Read("run-1")
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(journal.ReadResult{Records: recs, Torn: true}, got, sameRecords); diff != "" {
				t.Errorf("Read (-want +got):\n%s", diff)
			}

			w, reopened, err := s.Reopen("run-1")
			if err != nil {
				t.Fatalf("Reopen: %v", err)
			}
			defer w.Close()
			if diff := cmp.Diff(recs, reopened, sameRecords); diff != "" {
				t.Errorf("Reopen records (-want +got):\n%s", diff)
			}
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, intact) {
				t.Errorf("after Reopen the file is %q (%v), want the intact %q", b, err, intact)
			}
			rec, err := w.Append("resumed", nil)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Seq != 4 || rec.Prev != recs[2].Hash() {
				t.Errorf("Append after Reopen: seq %d prev %s, want 4 and %s", rec.Seq, rec.Prev, recs[2].Hash())
			}
			w.Close()
			got, err = s.Read("run-1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(journal.ReadResult{Records: append(recs, rec)}, got, sameRecords); diff != "" {
				t.Errorf("Read after resume (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBadCompleteLastLine: a last line with its newline was written whole,
// so if it is not the next record the file was damaged or tampered with; it
// is not mistaken for a torn append and silently dropped.
func TestBadCompleteLastLine(t *testing.T) {
	t.Parallel()
	next := func(seq int, prev string) []byte {
		b, _ := json.Marshal(journal.Record{Seq: seq, Time: t0, Type: "step", Prev: prev})
		return append(b, '\n')
	}
	tests := []struct {
		name string
		tail func(recs []journal.Record) []byte
	}{
		{"invalid JSON", func([]journal.Record) []byte { return []byte("{\"seq\":4,\n") }},
		{"empty line", func([]journal.Record) []byte { return []byte("\n") }},
		{"bad prev", func(r []journal.Record) []byte { return next(4, strings.Repeat("0", 64)) }},
		{"wrong seq", func(r []journal.Record) []byte { return next(5, r[2].Hash()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			recs := fill(t, s, "run-1", 3)
			p := path(s, "run-1")
			appendRaw(t, p, tt.tail(recs))
			before, _ := os.ReadFile(p)
			var ce *journal.CorruptError
			if _, err := s.Read("run-1"); !errors.As(err, &ce) || ce.Line != 4 {
				t.Errorf("Read: want a *CorruptError at line 4, got %v", err)
			}
			if w, _, err := s.Reopen("run-1"); !errors.As(err, &ce) || ce.Line != 4 {
				t.Errorf("Reopen: want a *CorruptError at line 4, got %v", err)
				if w != nil {
					w.Close()
				}
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Errorf("Reopen changed a corrupt journal")
			}
		})
	}
}

func TestCorruption(t *testing.T) {
	t.Parallel()
	replace := func(n int, old, new string) func([][]byte) [][]byte {
		return func(lines [][]byte) [][]byte {
			lines[n-1] = bytes.Replace(lines[n-1], []byte(old), []byte(new), 1)
			return lines
		}
	}
	tests := []struct {
		name     string
		edit     func(lines [][]byte) [][]byte
		wantLine int
		wantErr  string
	}{
		// A valid line with other content breaks the chain at the next line.
		{"data of line 2 changed", replace(2, `"step":2`, `"step":7`), 3, "is not the hash of line 2"},
		{"line 2 cut short", func(l [][]byte) [][]byte { l[1] = l[1][:10]; return l }, 2, "not a record"},
		{"seq of line 2 changed", replace(2, `"seq":2`, `"seq":9`), 2, "seq is 9, want 2"},
		{"unknown field in line 3", replace(3, `{"seq"`, `{"x":1,"seq"`), 3, `unknown field "x"`},
		{"type of line 2 removed", replace(2, `"type":"step"`, `"type":""`), 2, "no type"},
		{"line 2 removed", func(l [][]byte) [][]byte { return slices.Delete(l, 1, 2) }, 2, "seq is 3, want 2"},
		{"lines 2 and 3 swapped", func(l [][]byte) [][]byte { l[1], l[2] = l[2], l[1]; return l }, 2, "seq is 3, want 2"},
		{"line 2 repeated", func(l [][]byte) [][]byte { return slices.Insert(l, 2, l[1]) }, 3, "seq is 2, want 3"},
		{"empty line after line 2", func(l [][]byte) [][]byte { return slices.Insert(l, 2, []byte{}) }, 3, "not a record"},
		{"prev added to line 1", replace(1, `"type"`, `"prev":"ab","type"`), 1, "first record has prev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			fill(t, s, "run-1", 4)
			p := path(s, "run-1")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
			edited := append(bytes.Join(tt.edit(lines), []byte("\n")), '\n')
			if err := os.WriteFile(p, edited, 0o600); err != nil {
				t.Fatal(err)
			}

			_, readErr := s.Read("run-1")
			_, _, reopenErr := s.Reopen("run-1")
			for op, err := range map[string]error{"reading": readErr, "reopening": reopenErr} {
				var ce *journal.CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: %v, want a *CorruptError", op, err)
				}
				if ce.Path != p || ce.Line != tt.wantLine {
					t.Errorf("%s: error at %s:%d, want %s:%d", op, ce.Path, ce.Line, p, tt.wantLine)
				}
				prefix := fmt.Sprintf("%s journal run-1: %s:%d: ", op, p, tt.wantLine)
				if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.wantErr) {
					t.Errorf("%s: error %q, want it to start with %q and contain %q", op, msg, prefix, tt.wantErr)
				}
			}
			// Reopen must not truncate a corrupt journal: it is evidence.
			if after, err := os.ReadFile(p); err != nil || !bytes.Equal(after, edited) {
				t.Errorf("Reopen changed the corrupt journal (%v)", err)
			}
		})
	}
}

func TestLocked(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	w, err := s.Create("run-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("step", nil); err != nil {
		t.Fatal(err)
	}
	// A second Store on the same directory stands in for another process.
	other, err := journal.Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []*journal.Store{s, other} {
		if _, _, err := st.Reopen("run-1"); !errors.Is(err, journal.ErrLocked) {
			t.Errorf("Reopen while a writer is open: %v, want ErrLocked", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, recs, err := other.Reopen("run-1")
	if err != nil {
		t.Fatalf("Reopen after Close: %v", err)
	}
	defer w2.Close()
	if len(recs) != 1 {
		t.Errorf("Reopen returned %d records, want 1", len(recs))
	}
	if _, _, err := s.Reopen("run-1"); !errors.Is(err, journal.ErrLocked) {
		t.Errorf("Reopen while a reopened writer is open: %v, want ErrLocked", err)
	}
}

func TestActive(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	active := func(want bool) {
		t.Helper()
		got, err := s.Active("run-1")
		if err != nil || got != want {
			t.Errorf("Active = %v, %v; want %v", got, err, want)
		}
	}
	w, err := s.Create("run-1")
	if err != nil {
		t.Fatal(err)
	}
	active(true)
	// The probe must not keep the lock, nor disturb the writer.
	active(true)
	if _, err := w.Append("step", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read("run-1"); err != nil {
		t.Errorf("Read while active: %v", err)
	}
	w.Close()
	active(false)
	w, _, err = s.Reopen("run-1")
	if err != nil {
		t.Fatal(err)
	}
	active(true)
	w.Close()
	active(false)
}

func TestAppendErrors(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	w, err := s.Create("run-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("", nil); err == nil {
		t.Error("Append with an empty type succeeded")
	}
	if _, err := w.Append("step", make(chan int)); err == nil {
		t.Error("Append of unencodable data succeeded")
	}
	// Rejected appends wrote nothing, so the writer goes on at seq 1.
	if rec, err := w.Append("step", nil); err != nil || rec.Seq != 1 {
		t.Errorf("Append after rejected ones: seq %d, %v; want 1", rec.Seq, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("step", nil); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Append after Close: %v, want os.ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentAppend(t *testing.T) {
	t.Parallel()
	const goroutines, each = 8, 25
	s := newStore(t)
	w, err := s.Create("run-1")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		written []journal.Record
		wg      sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				rec, err := w.Append("step", map[string]int{"goroutine": g, "i": i})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written = append(written, rec)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Read checks the seqs are consecutive and the chain unbroken.
	got, err := s.Read("run-1")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(written, func(a, b journal.Record) int { return a.Seq - b.Seq })
	if diff := cmp.Diff(journal.ReadResult{Records: written}, got, sameRecords); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if len(got.Records) != goroutines*each {
		t.Errorf("read %d records, want %d", len(got.Records), goroutines*each)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if ids, err := s.List(); err != nil || len(ids) != 0 {
		t.Errorf("List of an empty store = %v, %v", ids, err)
	}
	for _, id := range []string{"b", "a-b", "a", "20260102t030405-x"} {
		w, err := s.Create(id)
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	// Files that are not journals are left out.
	for _, name := range []string{"notes.txt", "UPPER.jsonl", ".jsonl", "a.jsonl.tmp"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.Dir(), "dir.jsonl"), 0o700); err != nil {
		t.Fatal(err)
	}
	ids, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"20260102t030405-x", "a", "a-b", "b"}, ids); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := newStore(b)
	w, err := s.Create("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	data := map[string]string{"step": "cordon", "node": "worker-1"}
	n := 0
	for b.Loop() {
		if _, err := w.Append("step.done", data); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "appends/s")
}

// A record appended unsynced takes its place in the chain like any other:
// the synced record after it links to it, and a reader gets both, in order.
func TestAppendUnsynced(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	w, err := s.Create("run-1")
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Append("step-started", nil)
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := w.AppendUnsynced("step-skipped", map[string]int{"index": 1})
	if err != nil {
		t.Fatal(err)
	}
	last, err := w.Append("run-finished", nil)
	if err != nil {
		t.Fatal(err)
	}
	if skipped.Seq != 2 || skipped.Prev != first.Hash() || last.Prev != skipped.Hash() {
		t.Errorf("chain: skipped seq %d prev %.8s, last prev %.8s; want 2, %.8s, %.8s", skipped.Seq, skipped.Prev, last.Prev, first.Hash(), skipped.Hash())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read("run-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(journal.ReadResult{Records: []journal.Record{first, skipped, last}}, got, sameRecords); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
}

// A discarded journal is gone: not listed, not found, and its id can start
// again. A Reopen that opened it before it went finds it gone.
func TestDiscard(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	w, err := s.Create("lost-claim")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("run", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reopen("lost-claim"); !errors.Is(err, journal.ErrLocked) {
		t.Errorf("Reopen while a writer holds it: %v, want ErrLocked", err)
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("after", nil); err == nil {
		t.Error("Append after Discard succeeded")
	}
	if _, err := s.Read("lost-claim"); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Read after Discard: %v, want ErrNotFound", err)
	}
	if ids, err := s.List(); err != nil || len(ids) != 0 {
		t.Errorf("List after Discard = %v, %v; want none", ids, err)
	}

	// A journal left by a killed writer is discarded the same way, once
	// reopened; a new one may then take its id.
	fill(t, s, "left", 2)
	w, _, err = s.Reopen("left")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reopen("left"); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Reopen of a discarded journal: %v, want ErrNotFound", err)
	}
	w, err = s.Create("left")
	if err != nil {
		t.Fatalf("Create after Discard: %v", err)
	}
	w.Close()
}
