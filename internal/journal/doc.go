// Package journal keeps durable, append-only run journals: the record of
// every step of a playbook run, written before the next step starts, so that
// a run killed at any moment (SIGKILL, power loss) can be resumed, and its
// history handed over verbatim in an evidence bundle.
//
// # Format
//
// A Store is a directory (mode 0700). Journal id is the file <id>.jsonl in
// it, one JSON Record per line, each line ending in "\n":
//
//	{"seq":1,"time":"2026-01-02T03:04:05Z","type":"run.start","data":{"playbook":"isolate"}}
//	{"seq":2,"time":"2026-01-02T03:04:06Z","type":"step.start","data":{"step":"cordon"},"prev":"5f1c…"}
//
// seq counts from 1 without gaps, time is UTC, data is optional and prev is
// the hex SHA-256 of the previous line's bytes (without the newline); the
// first record has none. ids match ^[a-z0-9][a-z0-9._-]{0,127}$, so an id is
// never a path.
//
// # Guarantees
//
// Append returns only after its line was written with one write call and
// fsynced: a record Append returned survives a crash of the process or of
// the machine. AppendUnsynced leaves the fsync to the next Append (or
// Sync): for records that can be derived again from the durable ones.
//
// A journal has at most one writer. Create and Reopen hold an exclusive
// flock(2) on the file for the writer's lifetime; the kernel drops it when
// the process dies, so a killed writer never blocks a resume.
//
// Readers take no lock: Read, List and Active work from any process while a
// writer appends. That is why journals are plain files and not a bbolt
// database, whose lock keeps other processes from reading.
//
// A crash in the middle of an append can leave a torn last line: one
// without its newline (the newline is the last byte of the one write call).
// Read skips it and says so; Reopen truncates it before appending. A
// complete line that is not the valid next record, wherever it is, was not
// left by a crash: it is corruption, reported as a *CorruptError naming the
// file and line, and Reopen refuses to append to such a journal.
//
// The hash chain makes the journal tamper-evident: changing, removing or
// inserting any line but the last breaks the chain at the following line.
// The chain cannot reveal a consistent rewrite of the last line or the
// removal of trailing records; anchoring the last record's Hash elsewhere (an evidence
// manifest, a signature) covers those.
package journal
