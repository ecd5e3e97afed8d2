package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/internal/spool"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock returns a clock that advances one second per call.
func clock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

func open(t testing.TB, dir string, opts ...spool.Option) (*spool.Spool, []spool.Item) {
	t.Helper()
	s, items, err := spool.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, items
}

func closeSpool(t testing.TB, s *spool.Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func add(t testing.TB, s *spool.Spool, data string) spool.Item {
	t.Helper()
	it, err := s.Add(t.Context(), []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func done(t testing.TB, s *spool.Spool, id uint64) {
	t.Helper()
	if err := s.Done(id, []byte("run-1 ok")); err != nil {
		t.Fatal(err)
	}
}

// segments returns the segment files in dir, oldest first.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

func ids(items []spool.Item) []uint64 {
	var ids []uint64
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

// logBuffer collects what the spool logs; the committer logs from its own
// goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, items := open(t, dir, spool.WithClock(clock()))
	if len(items) != 0 {
		t.Fatalf("new spool has %d pending items", len(items))
	}
	var want []spool.Item
	for _, data := range []string{"a", "", `{"rule":"Terminal shell in container"}`} {
		want = append(want, add(t, s, data))
	}
	for i, it := range want {
		if it.ID != uint64(i+1) || !it.Added.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("Add %d returned id %d added %v, want %d and %v", i, it.ID, it.Added, i+1, t0.Add(time.Duration(i)*time.Second))
		}
	}
	if st := s.Stats(); st.Pending != 3 || st.Adds != 3 || st.Commits != 3 {
		t.Errorf("Stats = %+v, want 3 pending, adds and commits", st)
	}
	closeSpool(t, s)

	s, got := open(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Pending != 3 {
		t.Errorf("Stats().Pending = %d after reopen, want 3", st.Pending)
	}
}

func TestDone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir, spool.WithClock(clock()))
	var all []spool.Item
	for i := range 5 {
		all = append(all, add(t, s, fmt.Sprint("alert ", i)))
	}
	done(t, s, 2)
	done(t, s, 4)
	for _, id := range []uint64{2, 99} {
		if err := s.Done(id, nil); !errors.Is(err, spool.ErrNotPending) {
			t.Errorf("Done(%d) = %v, want ErrNotPending", id, err)
		}
	}
	if got := s.Stats().Pending; got != 3 {
		t.Errorf("Stats().Pending = %d, want 3", got)
	}
	closeSpool(t, s)

	s, got := open(t, dir)
	if diff := cmp.Diff([]spool.Item{all[0], all[2], all[4]}, got); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
	done(t, s, 1)
	if it := add(t, s, "after"); it.ID != 6 {
		t.Errorf("Add after reopen got id %d, want 6", it.ID)
	}
	closeSpool(t, s)

	_, got = open(t, dir)
	if diff := cmp.Diff([]uint64{3, 5, 6}, ids(got)); diff != "" {
		t.Errorf("pending ids after the second reopen (-want +got):\n%s", diff)
	}
}

// A spool whose items are all done keeps no add record at all; ids must
// still go on from where they were.
func TestIDsAfterAllDone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir)
	for range 3 {
		done(t, s, add(t, s, "x").ID)
	}
	closeSpool(t, s)
	for want := uint64(4); want < 7; want++ {
		s, items := open(t, dir)
		if len(items) != 0 {
			t.Errorf("reopen found %d pending items, want none", len(items))
		}
		if segs := segments(t, dir); len(segs) != 1 {
			t.Errorf("segments after reopen: %v, want only the new one", segs)
		}
		it := add(t, s, "y")
		if it.ID != want {
			t.Errorf("Add after reopen got id %d, want %d", it.ID, want)
		}
		done(t, s, it.ID)
		closeSpool(t, s)
	}
}

func TestLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir)
	if _, _, err := spool.Open(dir); !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	closeSpool(t, s)
	s, _ = open(t, dir)
	closeSpool(t, s)
}

func TestAddErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir)
	if _, err := s.Add(t.Context(), make([]byte, spool.MaxData+1)); !errors.Is(err, spool.ErrTooLarge) {
		t.Errorf("Add of MaxData+1 bytes = %v, want ErrTooLarge", err)
	}
	if _, err := s.Add(t.Context(), make([]byte, spool.MaxData)); err != nil {
		t.Errorf("Add of MaxData bytes: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Add(ctx, []byte("late")); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a canceled context = %v, want context.Canceled", err)
	}
	it := add(t, s, "x")
	if err := s.Done(it.ID, make([]byte, spool.MaxOutcome+1)); !errors.Is(err, spool.ErrTooLarge) {
		t.Errorf("Done with a large outcome = %v, want ErrTooLarge", err)
	}
	closeSpool(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Add(t.Context(), []byte("closed")); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
	if err := s.Done(it.ID, nil); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Done after Close = %v, want ErrClosed", err)
	}

	_, items := open(t, dir)
	if diff := cmp.Diff([]uint64{1, 2}, ids(items)); diff != "" {
		t.Errorf("pending ids after reopen (-want +got):\n%s", diff)
	}
}

func TestConcurrentAdd(t *testing.T) {
	t.Parallel()
	const senders, each = 16, 40
	dir := t.TempDir()
	s, _ := open(t, dir)
	var (
		mu   sync.Mutex
		want = make(map[uint64]string)
		wg   sync.WaitGroup
	)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				data := fmt.Sprintf("sender %d alert %d", g, i)
				it, err := s.Add(t.Context(), []byte(data))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := want[it.ID]; dup {
					t.Errorf("id %d returned for %q and %q", it.ID, prev, data)
				}
				want[it.ID] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("%d adds in %d commits, %.1f records per commit", st.Adds, st.Commits, float64(st.Adds)/float64(st.Commits))
	if st.Adds != senders*each || st.Pending != senders*each {
		t.Errorf("Stats = %+v, want %d adds and pending", st, senders*each)
	}
	closeSpool(t, s)

	_, items := open(t, dir)
	got := make(map[uint64]string)
	for _, it := range items {
		got[it.ID] = string(it.Data)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
	if !slices.IsSorted(ids(items)) {
		t.Errorf("Open returned ids out of order: %v", ids(items))
	}
}

// A commit holds about 1 MiB: an Add that would overflow the batch waits
// for the next one.
func TestAddWaitsForRoom(t *testing.T) {
	t.Parallel()
	s, _ := open(t, t.TempDir())
	big := make([]byte, spool.MaxData)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.Add(t.Context(), big); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Commits != 4 {
		t.Errorf("4 adds of MaxData went into %d commits, want 4", st.Commits)
	}
}
