package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const segExt = ".seg"

// segment is one segment file. Its fields are guarded by Spool.mu once the
// spool is open.
type segment struct {
	num  uint64
	path string
	size int64
	// pending counts the items whose add record here is their current
	// copy and whose done record is not committed yet; pendingBytes sums
	// their data. A sealed segment with pending 0 can be deleted.
	pending      int
	pendingBytes int64
}

func segPath(dir string, num uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", num, segExt))
}

// listSegments returns the segments in dir, oldest first. Other files are
// not the spool's and are left alone.
func listSegments(dir string) ([]*segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segExt)
		if !ok || len(name) != 16 || !e.Type().IsRegular() {
			continue
		}
		num, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, &segment{num: num, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmpUint(a.num, b.num) })
	return segs, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readFrame reads the frame at off of a file of size bytes into buf and
// returns its payload. An error wrapping errBadFrame means no intact frame
// starts at off; any other is an I/O error.
func readFrame(f io.ReaderAt, off, size int64, buf []byte) ([]byte, error) {
	if size-off < frameHeaderLen {
		return nil, fmt.Errorf("%w: header cut short", errBadFrame)
	}
	var h [frameHeaderLen]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return nil, err
	}
	n, err := checkFrameHeader(h[:], size-off-frameHeaderLen)
	if err != nil {
		return nil, err
	}
	buf = slices.Grow(buf[:0], n)[:n]
	if _, err := f.ReadAt(buf, off+frameHeaderLen); err != nil {
		return nil, err
	}
	if err := checkFrameSum(h[:], buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// frameAfter reports whether an intact frame starts anywhere in
// [from, size). Damage followed by one was not left by a crash, which
// tears only the end of what was written last.
func frameAfter(f io.ReaderAt, from, size int64) (bool, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk+len(frameMagic)-1)
	for pos := from; pos < size; pos += chunk {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		if err != nil && err != io.EOF {
			return false, err
		}
		for i := 0; ; {
			j := bytes.Index(buf[i:n], []byte(frameMagic))
			if j < 0 {
				break
			}
			_, err := readFrame(f, pos+int64(i+j), size, nil)
			if err == nil {
				return true, nil
			}
			if !errors.Is(err, errBadFrame) {
				return false, err
			}
			i += j + 1
		}
	}
	return false, nil
}
