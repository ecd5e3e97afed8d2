package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// The on-disk format; doc.go describes it.
const (
	segMagic     = "KIRSPOOL"
	segVersion   = 1
	segHeaderLen = 16

	frameMagic     = "\xf5kir" // 0xf5 never occurs in UTF-8, so JSON alerts do not mimic it
	frameHeaderLen = 12
	// maxFrameLen bounds what Open reads as one frame; a checkpoint of
	// several million pending ids would be needed to reach it.
	maxFrameLen = 64 << 20

	recAdd        = 0x01
	recDone       = 0x02
	recCheckpoint = 0x03

	addHeaderLen        = 1 + 8 + 8 + 4
	doneHeaderLen       = 1 + 8 + 4
	checkpointHeaderLen = 1 + 8 + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadFrame marks a frame that is not intact: what a crash mid-write
// leaves, or damage.
var errBadFrame = errors.New("bad frame")

func appendSegHeader(b []byte) []byte {
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint32(b, segVersion)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[len(b)-12:], castagnoli))
}

func checkSegHeader(h []byte) error {
	switch {
	case len(h) < segHeaderLen:
		return errors.New("segment header cut short")
	case string(h[:8]) != segMagic:
		return errors.New("not a spool segment")
	case binary.LittleEndian.Uint32(h[12:16]) != crc32.Checksum(h[:12], castagnoli):
		return errors.New("segment header checksum mismatch")
	case binary.LittleEndian.Uint32(h[8:12]) != segVersion:
		return fmt.Errorf("%w %d, want %d", ErrVersion, binary.LittleEndian.Uint32(h[8:12]), segVersion)
	}
	return nil
}

// startFrame returns buf emptied but for room for a frame header, which
// sealFrame fills in once the payload is complete.
func startFrame(buf []byte) []byte {
	return append(buf[:0], make([]byte, frameHeaderLen)...)
}

// frameEmpty reports whether the frame started in buf has no payload yet.
func frameEmpty(buf []byte) bool { return len(buf) <= frameHeaderLen }

func sealFrame(buf []byte) {
	copy(buf, frameMagic)
	binary.LittleEndian.PutUint32(buf[4:8], uint32(len(buf)-frameHeaderLen))
	crc := crc32.Update(crc32.Checksum(buf[4:8], castagnoli), castagnoli, buf[frameHeaderLen:])
	binary.LittleEndian.PutUint32(buf[8:12], crc)
}

// checkFrameHeader checks the header h of a frame with at most avail bytes
// after it and returns its payload length.
func checkFrameHeader(h []byte, avail int64) (int, error) {
	if string(h[:4]) != frameMagic {
		return 0, fmt.Errorf("%w: no frame magic", errBadFrame)
	}
	n := binary.LittleEndian.Uint32(h[4:8])
	if n == 0 || n > maxFrameLen || int64(n) > avail {
		return 0, fmt.Errorf("%w: length %d with %d bytes left", errBadFrame, n, avail)
	}
	return int(n), nil
}

func checkFrameSum(h, payload []byte) error {
	want := binary.LittleEndian.Uint32(h[8:12])
	if got := crc32.Update(crc32.Checksum(h[4:8], castagnoli), castagnoli, payload); got != want {
		return fmt.Errorf("%w: checksum mismatch", errBadFrame)
	}
	return nil
}

// appendAdd appends an add record and returns the offset of data in b.
func appendAdd(b []byte, id uint64, added int64, data []byte) ([]byte, int) {
	b = append(b, recAdd)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, uint64(added))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...), len(b)
}

func appendDone(b []byte, id uint64, outcome []byte) []byte {
	b = append(b, recDone)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(outcome)))
	return append(b, outcome...)
}

// appendCheckpoint appends a checkpoint of the pending ids, which must be
// ascending, and of the next id to hand out.
func appendCheckpoint(b []byte, next uint64, ids []uint64) []byte {
	b = append(b, recCheckpoint)
	b = binary.LittleEndian.AppendUint64(b, next)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
	lenAt := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0)
	var prev uint64
	for _, id := range ids {
		b = binary.AppendUvarint(b, id-prev)
		prev = id
	}
	binary.LittleEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	return b
}

// record is one decoded record. For an add, data is the data and off its
// offset in the payload; for a done, data is the outcome.
type record struct {
	typ   byte
	id    uint64
	added int64
	data  []byte
	off   int
	next  uint64   // checkpoint
	ids   []uint64 // checkpoint, ascending
}

// recordError is a malformed record at offset off of a payload.
type recordError struct {
	off int
	err error
}

func (e *recordError) Error() string { return e.err.Error() }

// parseRecords calls fn for each record of payload in order. The payload
// passed its checksum, so a malformed record is damage or a bug, never a
// torn write.
func parseRecords(p []byte, fn func(record) error) error {
	for off := 0; off < len(p); {
		r, n, err := parseRecord(p[off:])
		if err != nil {
			return &recordError{off: off, err: err}
		}
		if r.typ == recAdd {
			r.off = off + addHeaderLen
		}
		if err := fn(r); err != nil {
			return &recordError{off: off, err: err}
		}
		off += n
	}
	return nil
}

// parseRecord decodes the record at the start of p and returns its length.
func parseRecord(p []byte) (record, int, error) {
	le := binary.LittleEndian
	r := record{typ: p[0]}
	var hdr int
	switch r.typ {
	case recAdd:
		hdr = addHeaderLen
	case recDone:
		hdr = doneHeaderLen
	case recCheckpoint:
		hdr = checkpointHeaderLen
	default:
		return record{}, 0, fmt.Errorf("unknown record type %#02x", r.typ)
	}
	if len(p) < hdr {
		return record{}, 0, fmt.Errorf("record type %#02x cut short", r.typ)
	}
	n := int(le.Uint32(p[hdr-4 : hdr]))
	if n > len(p)-hdr {
		return record{}, 0, fmt.Errorf("record type %#02x has length %d with %d bytes left", r.typ, n, len(p)-hdr)
	}
	body := p[hdr : hdr+n]
	switch r.typ {
	case recAdd:
		r.id, r.added, r.data = le.Uint64(p[1:9]), int64(le.Uint64(p[9:17])), body
	case recDone:
		r.id, r.data = le.Uint64(p[1:9]), body
	case recCheckpoint:
		r.next = le.Uint64(p[1:9])
		ids, err := parseIDs(body, int(le.Uint32(p[9:13])))
		if err != nil {
			return record{}, 0, err
		}
		r.ids = ids
	}
	if r.typ != recCheckpoint && r.id == 0 {
		return record{}, 0, errors.New("record has id 0")
	}
	return r, hdr + n, nil
}

func parseIDs(b []byte, count int) ([]uint64, error) {
	if count > len(b) { // each id takes at least one byte
		return nil, fmt.Errorf("checkpoint of %d ids in %d bytes", count, len(b))
	}
	ids := make([]uint64, 0, count)
	var id uint64
	for range count {
		d, n := binary.Uvarint(b)
		if n <= 0 || d == 0 { // ids start at 1 and ascend strictly
			return nil, errors.New("checkpoint ids not ascending varints")
		}
		id += d
		ids = append(ids, id)
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the checkpoint ids", len(b))
	}
	if !slices.IsSorted(ids) { // overflowed
		return nil, errors.New("checkpoint ids not ascending")
	}
	return ids, nil
}
