package spool_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/internal/spool"
)

const segBytes = spool.MinSegmentBytes

// data returns size bytes that say which item they are.
func data(i, size int) string { return fmt.Sprintf("%0*d", size, i) }

func TestCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir, spool.WithSegmentBytes(segBytes))
	var all []spool.Item
	for i := range 60 {
		all = append(all, add(t, s, data(i, 200)))
	}
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("60 items of 200 bytes filled %d segments of %d bytes, want at least 3", len(segs), segBytes)
	}
	first, active := segs[0], segs[len(segs)-1]

	// Item 2 pins the first segment; the other sealed ones hold nothing
	// pending once the dones are committed, which the next Add waits for.
	for _, it := range all {
		if it.ID != 2 {
			done(t, s, it.ID)
		}
	}
	flushed := add(t, s, "flush")
	if diff := cmp.Diff([]string{first, active}, segments(t, dir)); diff != "" {
		t.Errorf("segments once the dones are committed (-want +got):\n%s", diff)
	}

	// At the next rollover, item 2 and the flush item are copied forward
	// and both their segments deleted.
	for i := 0; slices.Contains(segments(t, dir), active); i++ {
		if i == 100 {
			t.Fatal("no rollover after 100 items")
		}
		done(t, s, add(t, s, data(i, 200)).ID)
	}
	if segs := segments(t, dir); len(segs) != 1 || segs[0] <= active {
		t.Errorf("segments after a rollover: %v, want only a new one", segs)
	}
	if st := s.Stats(); st.Moved != 2 || st.Pending != 2 {
		t.Errorf("Stats = %+v, want 2 moved and 2 pending", st)
	}
	closeSpool(t, s)

	_, got := open(t, dir, spool.WithSegmentBytes(segBytes))
	if diff := cmp.Diff([]spool.Item{all[1], flushed}, got); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
}

// Items that are never done cost disk in proportion to their own size,
// not to the segments they were written among.
func TestCompactionBound(t *testing.T) {
	t.Parallel()
	const senders, each, size = 16, 60, 200
	dir := t.TempDir()
	s, _ := open(t, dir, spool.WithSegmentBytes(segBytes))
	var (
		mu    sync.Mutex
		stuck []uint64
		wg    sync.WaitGroup
	)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				it, err := s.Add(t.Context(), []byte(data(g*each+i, size)))
				if err != nil {
					t.Error(err)
					return
				}
				if it.ID%50 == 0 {
					mu.Lock()
					stuck = append(stuck, it.ID)
					mu.Unlock()
					continue
				}
				if err := s.Done(it.ID, nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	add(t, s, "flush") // commits the last dones
	st := s.Stats()
	written := senders * each * (size + 33)
	bound := int64(4*(len(stuck)+1)*size + 3*segBytes)
	t.Logf("%d bytes written, %d items stuck; %d segments, %d bytes on disk (bound %d), %d items moved",
		written, len(stuck), st.Segments, st.DiskBytes, bound, st.Moved)
	if st.DiskBytes > bound {
		t.Errorf("%d bytes on disk, want at most %d", st.DiskBytes, bound)
	}
	closeSpool(t, s)

	_, items := open(t, dir, spool.WithSegmentBytes(segBytes))
	slices.Sort(stuck)
	got := ids(items)
	if diff := cmp.Diff(stuck, got[:len(got)-1]); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
}

// Pending items spread over segments survive any number of reopens, in
// order, and their segments go once they are done.
func TestReopenAcrossSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := spool.WithSegmentBytes(segBytes)
	s, _ := open(t, dir, opt)
	var want []spool.Item
	for i := range 50 {
		want = append(want, add(t, s, data(i, 300)))
	}
	closeSpool(t, s)
	before := len(segments(t, dir))

	for range 2 {
		s, got := open(t, dir, opt)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("pending after reopen (-want +got):\n%s", diff)
		}
		closeSpool(t, s)
	}
	// Each reopen starts a segment; the one it sealed was empty.
	if n := len(segments(t, dir)); n != before+1 {
		t.Errorf("%d segments after two reopens, want %d", n, before+1)
	}

	s, _ = open(t, dir, opt)
	for _, it := range want {
		done(t, s, it.ID)
	}
	add(t, s, "flush")
	if segs := segments(t, dir); len(segs) != 1 {
		t.Errorf("segments once everything is done: %v, want only the active one", segs)
	}
	closeSpool(t, s)
	_, got := open(t, dir, opt)
	if len(got) != 1 || string(got[0].Data) != "flush" {
		t.Errorf("pending after the last reopen: %v, want the flush item", ids(got))
	}
}
