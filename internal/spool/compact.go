package spool

import (
	"fmt"
	"os"
	"slices"

	"kir.dev/kir/internal/durable"
)

// move is a pending item that a rollover copies into the new segment.
type move struct {
	id    uint64
	src   *segment
	off   int64 // of the data in src
	n     int
	added int64
	to    int64 // of the data in the new segment
}

// roll starts a new segment: it writes the checkpoint and the copies of
// the items moved out of nearly-empty sealed segments, syncs them and the
// directory, and only then deletes the segments left without pending
// items. Only the committer (or Open, before it starts) calls it.
func (s *Spool) roll() error {
	s.mu.Lock()
	num := uint64(1)
	if n := len(s.segs); n > 0 {
		num = s.segs[n-1].num + 1
	}
	ids := make([]uint64, 0, s.npend)
	for id, it := range s.items {
		if !it.done {
			ids = append(ids, id)
		}
	}
	next := s.nextID
	moves := s.movesLocked()
	s.mu.Unlock()
	slices.Sort(ids)

	path := segPath(s.dir, num)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	size, err := fill(f, next, ids, moves)
	if err == nil {
		// The new segment's checkpoint must be on disk before anything
		// it supersedes is deleted.
		err = durable.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return err
	}

	s.mu.Lock()
	seg := &segment{num: num, path: path, size: size}
	s.segs = append(s.segs, seg)
	for _, m := range moves {
		// Done may have been called meanwhile; its record follows the
		// copy and will find the item here.
		it := s.items[m.id]
		it.leave()
		it.enter(seg, m.to)
	}
	s.stats.Moved += uint64(len(moves))
	dead := s.collectLocked()
	s.mu.Unlock()

	if s.f != nil {
		if err := s.f.Close(); err != nil { // synced already; nothing is lost
			s.opts.log.Warn("spool: closing a sealed segment", "err", err)
		}
	}
	s.f, s.activeSize = f, size
	s.remove(dead)
	return nil
}

// movesLocked picks the pending items to copy forward: those of sealed
// segments holding at most a quarter segment of pending data, oldest
// segment first, at most half a segment in all. Copying them costs less
// than the segment they would keep on disk.
func (s *Spool) movesLocked() []move {
	limit := s.opts.segmentBytes / 4
	budget := s.opts.segmentBytes / 2
	from := make(map[*segment]bool)
	for _, seg := range s.segs {
		if seg.pending == 0 || seg.pendingBytes > limit {
			continue
		}
		if seg.pendingBytes > budget {
			break
		}
		budget -= seg.pendingBytes
		from[seg] = true
	}
	if len(from) == 0 {
		return nil
	}
	var moves []move
	for id, it := range s.items {
		if from[it.seg] && !it.done {
			moves = append(moves, move{id: id, src: it.seg, off: it.off, n: it.n, added: it.added})
		}
	}
	slices.SortFunc(moves, func(a, b move) int { return cmpUint(a.id, b.id) })
	return moves
}

// fill writes a new segment to f: header, checkpoint, then the moved
// items, reading their data from their segments, in frames of at most
// maxBatchBytes. It sets each move's to and returns the size written.
//
// Each write is synced before the next, as the committer's are: a power
// loss must not leave damage before an intact frame, which Open could not
// tell from corruption.
func fill(f *os.File, next uint64, ids []uint64, moves []move) (int64, error) {
	var size int64
	write := func(b []byte) error {
		if _, err := f.Write(b); err != nil {
			return err
		}
		size += int64(len(b))
		return datasync(f)
	}
	if err := write(appendSegHeader(nil)); err != nil {
		return 0, err
	}
	cp := appendCheckpoint(startFrame(nil), next, ids)
	if len(cp)-frameHeaderLen > maxFrameLen {
		return 0, fmt.Errorf("checkpoint of %d pending items exceeds %d bytes", len(ids), maxFrameLen)
	}
	sealFrame(cp)
	if err := write(cp); err != nil {
		return 0, err
	}

	srcs := make(map[*segment]*os.File)
	defer func() {
		for _, src := range srcs {
			src.Close()
		}
	}()
	fb := startFrame(nil)
	flush := func() error {
		sealFrame(fb)
		if err := write(fb); err != nil {
			return err
		}
		fb = startFrame(fb)
		return nil
	}
	var data []byte
	for i := range moves {
		m := &moves[i]
		if !frameEmpty(fb) && len(fb)+addHeaderLen+m.n > maxBatchBytes {
			if err := flush(); err != nil {
				return 0, err
			}
		}
		src := srcs[m.src]
		if src == nil {
			var err error
			if src, err = os.Open(m.src.path); err != nil {
				return 0, err
			}
			srcs[m.src] = src
		}
		data = slices.Grow(data[:0], m.n)[:m.n]
		if _, err := src.ReadAt(data, m.off); err != nil {
			return 0, fmt.Errorf("copying item %d from %s: %w", m.id, m.src.path, err)
		}
		var off int
		fb, off = appendAdd(fb, m.id, m.added, data)
		m.to = size + int64(off)
	}
	if !frameEmpty(fb) {
		if err := flush(); err != nil {
			return 0, err
		}
	}
	return size, nil
}

// collectLocked takes the sealed segments without pending items out of
// the spool and returns them for deletion. No done record in them is
// needed any more: the active segment's checkpoint, on disk, came later.
func (s *Spool) collectLocked() []*segment {
	var dead []*segment
	last := len(s.segs) - 1
	live := s.segs[:0]
	for i, seg := range s.segs {
		if i < last && seg.pending == 0 {
			dead = append(dead, seg)
			continue
		}
		live = append(live, seg)
	}
	clear(s.segs[len(live):])
	s.segs = live
	return dead
}

// remove deletes dead segments. The directory is not synced after: a
// segment that a power loss brings back holds only items that the active
// segment's checkpoint or done records finish, so it is harmless, and the
// next rollover deletes it again.
func (s *Spool) remove(dead []*segment) {
	for _, seg := range dead {
		if err := os.Remove(seg.path); err != nil {
			s.opts.log.Warn("spool: deleting a finished segment", "path", seg.path, "err", err)
		}
	}
}
