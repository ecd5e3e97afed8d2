package spool_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/internal/spool"
)

// written is a spool filled by build: its last segment and where each
// item's frame starts and ends in it.
type written struct {
	dir, seg    string
	items       []spool.Item
	starts, end []int64
}

// build adds n items of size bytes one at a time, so that each is one
// frame of the last segment, and closes the spool.
func build(t *testing.T, n, size int, opts ...spool.Option) written {
	t.Helper()
	w := written{dir: t.TempDir()}
	s, _ := open(t, w.dir, opts...)
	segs := segments(t, w.dir)
	w.seg = segs[len(segs)-1]
	for i := range n {
		w.starts = append(w.starts, fileSize(t, w.seg))
		data := fmt.Sprintf("%0*d", size, i)
		w.items = append(w.items, add(t, s, data))
		w.end = append(w.end, fileSize(t, w.seg))
	}
	closeSpool(t, s)
	if segs := segments(t, w.dir); segs[len(segs)-1] != w.seg {
		t.Fatalf("build rolled over to %s", segs[len(segs)-1])
	}
	return w
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// flip inverts the byte at off.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, path, off, []byte{^b[off]})
}

// nextSeg names the segment after w's last.
func (w written) nextSeg() string {
	var num uint64
	fmt.Sscanf(filepath.Base(w.seg), "%016x", &num)
	return filepath.Join(w.dir, fmt.Sprintf("%016x.seg", num+1))
}

// segHeader is a valid segment header, written out by hand from the
// format in doc.go.
func segHeader() []byte {
	h := append([]byte("KIRSPOOL"), 1, 0, 0, 0)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
}

// frame wraps payload as a frame with a valid checksum.
func frame(payload []byte) []byte {
	f := append([]byte("\xf5kir"), binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))...)
	tab := crc32.MakeTable(crc32.Castagnoli)
	f = binary.LittleEndian.AppendUint32(f, crc32.Update(crc32.Checksum(f[4:8], tab), tab, payload))
	return append(f, payload...)
}

// What a crash can leave at the end of the last segment is truncated, the
// intact records before it kept, and the repair logged.
func TestTornTail(t *testing.T) {
	t.Parallel()
	const n = 4
	tests := []struct {
		name   string
		damage func(t *testing.T, w written)
		kept   int  // items that survive
		quiet  bool // nothing to report: a crash left no partial write
	}{
		{"last frame cut by 1 byte", func(t *testing.T, w written) { truncate(t, w.seg, w.end[n-1]-1) }, n - 1, false},
		{"last frame cut by 7 bytes", func(t *testing.T, w written) { truncate(t, w.seg, w.end[n-1]-7) }, n - 1, false},
		{"last frame header cut", func(t *testing.T, w written) { truncate(t, w.seg, w.starts[n-1]+5) }, n - 1, false},
		{"last frame checksum mismatch", func(t *testing.T, w written) { flip(t, w.seg, w.end[n-1]-1) }, n - 1, false},
		{"last frame zeroed", func(t *testing.T, w written) {
			writeAt(t, w.seg, w.starts[n-1]+20, make([]byte, 100))
		}, n - 1, false},
		{"garbage appended", func(t *testing.T, w written) {
			garbage := make([]byte, 3000)
			rng := rand.NewChaCha8([32]byte{1})
			rng.Read(garbage)
			appendFile(t, w.seg, garbage)
		}, n, false},
		{"zeros appended", func(t *testing.T, w written) { appendFile(t, w.seg, make([]byte, 4096)) }, n, false},
		{"frame header appended", func(t *testing.T, w written) {
			appendFile(t, w.seg, []byte("\xf5kir\xe8\x03\x00\x00\x00\x00\x00\x00"))
		}, n, false},
		{"next segment empty", func(t *testing.T, w written) { appendFile(t, w.nextSeg(), nil) }, n, false},
		{"next segment header cut", func(t *testing.T, w written) { appendFile(t, w.nextSeg(), segHeader()[:5]) }, n, false},
		{"next segment with only its header", func(t *testing.T, w written) { appendFile(t, w.nextSeg(), segHeader()) }, n, true},
		{"next segment checkpoint cut", func(t *testing.T, w written) {
			appendFile(t, w.nextSeg(), append(segHeader(), frame([]byte{3, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})[:20]...))
		}, n, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := build(t, n, 100)
			tt.damage(t, w)

			var log logBuffer
			s, got := open(t, w.dir, spool.WithLogger(log.logger()))
			if diff := cmp.Diff(w.items[:tt.kept], got); diff != "" {
				t.Errorf("pending after the damage (-want +got):\n%s", diff)
			}
			if !tt.quiet && !strings.Contains(log.String(), "torn") {
				t.Errorf("Open logged %q, want a torn tail reported", log.String())
			}
			// The torn record was never acknowledged, so its id is free.
			if it := add(t, s, "next"); it.ID != uint64(tt.kept+1) {
				t.Errorf("Add after the repair got id %d, want %d", it.ID, tt.kept+1)
			}
			closeSpool(t, s)

			// The repair was durable: nothing is left to repair.
			log = logBuffer{}
			_, got = open(t, w.dir, spool.WithLogger(log.logger()))
			if len(got) != tt.kept+1 || log.String() != "" {
				t.Errorf("second reopen: %d items, logged %q; want %d items, nothing logged", len(got), log.String(), tt.kept+1)
			}
		})
	}
}

// Damage that a crash cannot leave — anywhere but the end of the last
// segment — stops Open with the file and offset, rather than dropping the
// acknowledged records after it.
func TestCorruption(t *testing.T) {
	t.Parallel()
	const n = 4
	tests := []struct {
		name   string
		sealed bool // damage the segment once a later one exists
		damage func(t *testing.T, w written) int64
	}{
		{"checksum mismatch before intact frames", false, func(t *testing.T, w written) int64 {
			flip(t, w.seg, w.starts[1]+40)
			return w.starts[1]
		}},
		{"length damaged before intact frames", false, func(t *testing.T, w written) int64 {
			writeAt(t, w.seg, w.starts[1]+4, []byte{0xff, 0xff, 0, 0})
			return w.starts[1]
		}},
		{"magic damaged before intact frames", false, func(t *testing.T, w written) int64 {
			writeAt(t, w.seg, w.starts[2], []byte("junk"))
			return w.starts[2]
		}},
		{"header damaged before intact frames", false, func(t *testing.T, w written) int64 {
			flip(t, w.seg, 3)
			return 0
		}},
		{"sealed segment cut short", true, func(t *testing.T, w written) int64 {
			truncate(t, w.seg, w.end[n-1]-1)
			return w.starts[n-1]
		}},
		{"sealed segment checksum mismatch in last frame", true, func(t *testing.T, w written) int64 {
			flip(t, w.seg, w.end[n-1]-1)
			return w.starts[n-1]
		}},
		{"sealed segment garbage appended", true, func(t *testing.T, w written) int64 {
			appendFile(t, w.seg, []byte("garbage"))
			return w.end[n-1]
		}},
		{"sealed segment header cut", true, func(t *testing.T, w written) int64 {
			truncate(t, w.seg, 10)
			return 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Segments of 4 KiB holding more than 1 KiB of pending data are
			// not compacted away by the reopen that seals them.
			opt := spool.WithSegmentBytes(4 << 10)
			w := build(t, n, 700, opt)
			if tt.sealed {
				s, _ := open(t, w.dir, opt)
				closeSpool(t, s)
				if segs := segments(t, w.dir); len(segs) != 2 || segs[0] != w.seg {
					t.Fatalf("segments after reopen: %v, want %s and a new one", segs, w.seg)
				}
			}
			off := tt.damage(t, w)

			_, _, err := spool.Open(w.dir, opt)
			var ce *spool.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open = %v, want a *CorruptError", err)
			}
			if ce.Path != w.seg || ce.Offset != off {
				t.Errorf("CorruptError at %s:%d, want %s:%d", ce.Path, ce.Offset, w.seg, off)
			}
			if want := fmt.Sprintf("%s:%d: ", w.seg, off); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
			// Nothing was repaired behind the error.
			if _, _, err := spool.Open(w.dir, opt); !errors.As(err, &ce) {
				t.Errorf("second Open = %v, want a *CorruptError", err)
			}
		})
	}
}

// A segment from a newer format is refused, never taken for a torn one
// and removed, even when it is the last and holds nothing else.
func TestNewerVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seg := filepath.Join(dir, "0000000000000001.seg")
	h := append([]byte("KIRSPOOL"), 2, 0, 0, 0)
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
	appendFile(t, seg, h)
	if _, _, err := spool.Open(dir); !errors.Is(err, spool.ErrVersion) {
		t.Errorf("Open = %v, want ErrVersion", err)
	}
	if got := segments(t, dir); len(got) != 1 || got[0] != seg {
		t.Errorf("segments after Open: %v, want %s untouched", got, seg)
	}
}

// A frame whose checksum holds but whose records do not parse was written
// whole: it is corruption (or a bug), reported at the record, wherever the
// frame is.
func TestCorruptRecord(t *testing.T) {
	t.Parallel()
	add := func(id uint64, data string) []byte {
		r := binary.LittleEndian.AppendUint64([]byte{1}, id)
		r = binary.LittleEndian.AppendUint64(r, 0)
		r = binary.LittleEndian.AppendUint32(r, uint32(len(data)))
		return append(r, data...)
	}
	tests := []struct {
		name    string
		payload []byte
		off     int64 // of the bad record in the payload
	}{
		{"unknown type", append(add(1, "ok"), 9, 0, 0), 23},
		{"add data overruns the frame", add(1, "ok")[:22], 0},
		{"add with id 0", append(add(1, "ok"), add(0, "zero")...), 23},
		{"checkpoint ids overrun", []byte{3, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			seg := filepath.Join(dir, "0000000000000001.seg")
			appendFile(t, seg, append(segHeader(), frame(tt.payload)...))
			_, _, err := spool.Open(dir)
			var ce *spool.CorruptError
			if !errors.As(err, &ce) || ce.Path != seg || ce.Offset != 16+12+tt.off {
				t.Errorf("Open = %v, want a *CorruptError at %s:%d", err, seg, 16+12+tt.off)
			}
		})
	}
}
