package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"
)

// item is a pending item: where its data is, not the data.
type item struct {
	seg   *segment
	off   int64 // of the data in seg's file
	n     int
	added int64 // Unix ns
	// done is set by Done; the item leaves the map once the done record
	// is committed.
	done bool
}

func (it *item) leave() {
	it.seg.pending--
	it.seg.pendingBytes -= int64(it.n)
}

func (it *item) enter(seg *segment, off int64) {
	it.seg, it.off = seg, off
	seg.pending++
	seg.pendingBytes += int64(it.n)
}

// replay rebuilds the pending items from the segments, oldest first.
type replay struct {
	log   *slog.Logger
	items map[uint64]*item
	next  uint64 // the next id to hand out
	buf   []byte
}

// segment replays seg, the last segment if last. It truncates a torn tail
// of the last segment and reports whether seg still exists: a last segment
// whose header never made it to disk is removed.
func (r *replay) segment(seg *segment, last bool) (bool, error) {
	flag := os.O_RDONLY
	if last {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(seg.path, flag, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()

	h := make([]byte, min(size, segHeaderLen))
	if _, err := f.ReadAt(h, 0); err != nil {
		return false, err
	}
	if herr := checkSegHeader(h); herr != nil {
		if errors.Is(herr, ErrVersion) {
			return false, fmt.Errorf("%s: %w", seg.path, herr)
		}
		if !last {
			return false, &CorruptError{Path: seg.path, Offset: 0, Err: herr}
		}
		if found, err := frameAfter(f, 0, size); err != nil || found {
			return false, errors.Join(err, &CorruptError{Path: seg.path, Offset: 0, Err: herr})
		}
		// A crash while the segment was being created.
		r.log.Warn("spool: removing a segment torn while it was created", "path", seg.path, "bytes", size)
		f.Close()
		return false, os.Remove(seg.path)
	}

	off := int64(segHeaderLen)
	for off < size {
		p, err := readFrame(f, off, size, r.buf)
		if errors.Is(err, errBadFrame) {
			if !last {
				return false, &CorruptError{Path: seg.path, Offset: off, Err: err}
			}
			if found, ferr := frameAfter(f, off+1, size); ferr != nil || found {
				return false, errors.Join(ferr, &CorruptError{Path: seg.path, Offset: off, Err: err})
			}
			r.log.Warn("spool: truncating a torn tail", "path", seg.path, "offset", off, "bytes", size-off, "reason", err)
			if err := f.Truncate(off); err != nil {
				return false, err
			}
			// Synced now: once a later segment exists, this one is sealed,
			// and a torn tail there would be corruption.
			if err := f.Sync(); err != nil {
				return false, err
			}
			size = off
			break
		}
		if err != nil {
			return false, err
		}
		r.buf = p
		if err := r.frame(seg, off+frameHeaderLen, p); err != nil {
			var re *recordError
			if errors.As(err, &re) {
				return false, &CorruptError{Path: seg.path, Offset: off + frameHeaderLen + int64(re.off), Err: re.err}
			}
			return false, err
		}
		off += frameHeaderLen + int64(len(p))
	}
	seg.size = size
	return true, nil
}

// frame applies the records of the payload p found at offset at of seg.
func (r *replay) frame(seg *segment, at int64, p []byte) error {
	return parseRecords(p, func(rec record) error {
		switch rec.typ {
		case recAdd:
			r.next = max(r.next, rec.id+1)
			it := r.items[rec.id]
			if it != nil { // a copy moved forward by compaction
				it.leave()
			} else {
				it = &item{n: len(rec.data), added: rec.added}
				r.items[rec.id] = it
			}
			it.enter(seg, at+int64(rec.off))
		case recDone:
			r.next = max(r.next, rec.id+1)
			if it := r.items[rec.id]; it != nil {
				it.leave()
				delete(r.items, rec.id)
			}
		case recCheckpoint:
			r.next = max(r.next, rec.next)
			for id, it := range r.items {
				if _, ok := slices.BinarySearch(rec.ids, id); !ok {
					it.leave()
					delete(r.items, id)
				}
			}
		}
		return nil
	})
}

// pending reads the data of the pending items and returns them by id.
func (r *replay) pending() ([]Item, error) {
	ids := make([]uint64, 0, len(r.items))
	for id := range r.items {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	files := make(map[*segment]*os.File)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	items := make([]Item, 0, len(ids))
	for _, id := range ids {
		it := r.items[id]
		f := files[it.seg]
		if f == nil {
			var err error
			if f, err = os.Open(it.seg.path); err != nil {
				return nil, err
			}
			files[it.seg] = f
		}
		data := make([]byte, it.n)
		if _, err := f.ReadAt(data, it.off); err != nil {
			return nil, fmt.Errorf("reading item %d from %s: %w", id, it.seg.path, err)
		}
		items = append(items, Item{ID: id, Added: time.Unix(0, it.added).UTC(), Data: data})
	}
	return items, nil
}
