package journal_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"kir.dev/kir/internal/journal"
)

// helperEnv makes the test binary a writer that appends to the journal
// "crash" in the directory helperDirEnv names until it is killed.
const (
	helperEnv    = "JOURNAL_HELPER"
	helperDirEnv = "JOURNAL_HELPER_DIR"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper appends forever, printing each seq once Append has returned it,
// that is once the record is promised durable.
func helper() int {
	s, err := journal.Open(os.Getenv(helperDirEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w, err := s.Create("crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; ; i++ {
		// Lines up to 256 KiB give the kill a chance to land inside a
		// write, which the kernel then cuts short. It seldom does;
		// TestTornTail covers torn lines for certain.
		pad := strings.Repeat("x", i*7919%(256<<10))
		rec, err := w.Append("step", map[string]any{"i": i, "pad": pad})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(rec.Seq)
	}
}

func TestCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the writer in full flight, and keep reading until its stdout
	// ends to learn the last seq it was promised.
	promised, killed := 0, false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if promised, err = strconv.Atoi(sc.Text()); err != nil {
			t.Errorf("helper printed %q", sc.Text())
		}
		if promised >= 50 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper ended before it was killed: %v\n%s", err, stderr.Bytes())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want killed by SIGKILL\n%s", err, stderr.Bytes())
	}

	s, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	read, err := s.Read("crash")
	if err != nil {
		t.Fatalf("Read after the crash: %v", err)
	}
	t.Logf("killed after seq %d was promised; read %d records, torn last line: %v", promised, len(read.Records), read.Torn)
	if active, err := s.Active("crash"); err != nil || active {
		t.Errorf("Active after the crash = %v, %v; want false", active, err)
	}
	w, recs, err := s.Reopen("crash")
	if err != nil {
		t.Fatalf("Reopen after the crash: %v", err)
	}
	defer w.Close()
	if len(recs) < promised {
		t.Errorf("Reopen found %d records, but Append had returned seq %d", len(recs), promised)
	}
	// Read checked seqs and chain; check the contents too.
	for _, rec := range recs {
		var data struct{ I int }
		if err := json.Unmarshal(rec.Data, &data); err != nil || data.I != rec.Seq-1 {
			t.Errorf("record %d has data i=%d (%v), want %d", rec.Seq, data.I, err, rec.Seq-1)
		}
	}
	rec, err := w.Append("resumed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; rec.Seq != last.Seq+1 || rec.Prev != last.Hash() {
		t.Errorf("Append after the crash: seq %d prev %s, want %d and %s", rec.Seq, rec.Prev, last.Seq+1, last.Hash())
	}
	w.Close()
	read, err = s.Read("crash")
	if err != nil {
		t.Fatal(err)
	}
	if read.Torn || len(read.Records) != len(recs)+1 {
		t.Errorf("Read after resuming: %d records, torn %v; want %d, not torn", len(read.Records), read.Torn, len(recs)+1)
	}
}
