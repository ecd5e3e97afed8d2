// Package spool is a durable FIFO of opaque records with group commit:
// where `kir serve` keeps each Falco alert from the moment it answers 202
// until a playbook run has dealt with it, across crashes and restarts.
//
// # Guarantees
//
// An Add that returned without error is durable: its record was written
// and fsynced (fdatasync on Linux) before Add returned, so it survives a
// crash of the process or of the machine, and every later Open returns it
// until it is marked Done. Concurrent Adds share one write(2) and one
// fsync: a single committer goroutine writes everything that queued up
// while the previous commit was syncing (group commit), so throughput grows
// with the number of senders while each Add still waits for its own fsync.
// Before it writes, the committer waits — for at most half the recent fsync
// time, 2 ms at most — for the callers the previous commit released to add
// again, so that senders posting alert after alert share one fsync rather
// than settling into two groups that take turns.
// An Add whose context ends while it waits returns the context's error,
// but its record may still be committed: the next Open then returns it.
//
// Done does not wait for the disk. Its record goes into the next commit,
// which Done starts if the committer is idle, and Close commits what is left;
// a Done lost to a crash leaves its item pending, so the next Open returns
// it again. Delivery is therefore at least once: whoever processes items
// must make processing one twice harmless, as kir's idempotent actions do.
//
// One process at a time: Open takes an exclusive flock(2) on the file
// "lock" in the directory and returns ErrLocked while another Open, in this
// process or another, holds it. The kernel drops the lock when the process
// dies, so a killed server never blocks its restart.
//
// # Format
//
// The directory (mode 0700) holds the lock file and segment files named
// by their sequence number as 16 hex digits with the extension ".seg"
// (0000000000000001.seg), mode 0600. All integers are little-endian.
// A segment starts with a 16-byte header:
//
//	"KIRSPOOL" | version uint32 (1) | CRC-32C of the preceding 12 bytes
//
// followed by frames. A frame is what one commit writes with one write(2):
//
//	"\xf5kir" | length uint32 | CRC-32C of length and payload | payload
//
// and its payload is one or more records, each with its own length:
//
//	add:        0x01 | id uint64 | added (Unix ns) int64 | n uint32 | n bytes of data
//	done:       0x02 | id uint64 | n uint32 | n bytes of outcome
//	checkpoint: 0x03 | next id uint64 | count uint32 | n uint32 | n bytes:
//	            count uvarints, the pending ids as deltas, ascending
//
// The checksum is per frame rather than per record because a frame is
// the unit that is written and synced at once: no record in a frame was
// acknowledged before the whole frame was synced, and every write, the
// segment header's included, is synced before the next one starts. A
// crash can thus damage only the last frame of the last segment. Open truncates such a torn tail back to
// the last intact frame and logs a warning (WithLogger). Damage anywhere
// else — in a sealed segment, or in the last one followed by an intact
// frame — cannot come from a crash and would lose acknowledged records if
// truncated: Open refuses it with a *CorruptError naming file and offset.
//
// # Replay and compaction
//
// Every segment begins with a checkpoint: the ids pending when it was
// created and the next id to hand out. Replay reads the segments in order:
// an add makes its id pending (a second add of the same id is a copy moved
// forward by compaction), a done or a checkpoint that leaves the id out
// finishes it. So a segment's done records matter only until the next
// segment's checkpoint is on disk, which is what makes deletion simple: a
// sealed segment (one that is not the last) whose adds are all done — or
// copied forward — is deleted, whatever is in the others. Ids increase
// across restarts because the checkpoint carries the next id even when
// every add is gone.
//
// A new segment is started by each Open and whenever the current one has
// reached the segment size (WithSegmentBytes, 64 MiB by default; a segment
// exceeds it by at most one commit). On that rollover, sealed segments
// holding at most a quarter of the segment size in pending data have that
// data copied into the new segment, synced, and are then deleted, at most
// half a segment's worth per rollover. An item that is never done thus
// costs its copying, not the segments around it. Disk use after a rollover
// is therefore below about four times the pending data plus two segments;
// and since a segment that starts with half a segment of copies needs as
// much new data to fill up, copying at most doubles the bytes written.
//
// # Memory
//
// The spool keeps, per pending item, its location and size, not its data:
// Open returns the pending items with their data once, and the caller holds
// what it works on. Each commit buffers at most about 1 MiB (or one larger
// record); an Add that would exceed this waits for the next commit.
package spool
