package spool_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"kir.dev/kir/internal/spool"
)

// helperEnv makes the test binary a process that adds to the spool in the
// directory helperDirEnv names until it is killed.
const (
	helperEnv    = "SPOOL_HELPER"
	helperDirEnv = "SPOOL_HELPER_DIR"
)

// crashSegBytes makes the helper roll over and compact often, so that the
// kill can land in any of it.
const crashSegBytes = 64 << 10

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper adds from 8 goroutines forever, printing "add <id> <key>" once
// Add has returned, that is once the item is promised durable, and marks
// every other item done, printing "done <id>" first.
func helper() int {
	s, _, err := spool.Open(os.Getenv(helperDirEnv), spool.WithSegmentBytes(crashSegBytes))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	errs := make(chan error)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("g%d-i%d", g, i)
				// Up to 16 KiB, so that the kill may land inside a write.
				it, err := s.Add(context.Background(), crashData(key, i*7919%(16<<10)))
				if err != nil {
					errs <- err
					return
				}
				say("add %d %s", it.ID, key)
				if i%2 == 0 {
					say("done %d", it.ID)
					if err := s.Done(it.ID, []byte("ok")); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	fmt.Fprintln(os.Stderr, <-errs)
	return 1
}

func crashData(key string, pad int) []byte {
	return []byte(key + ":" + strings.Repeat("x", pad))
}

// TestCrash kills a process in full flight and checks that every item
// whose Add had returned is pending after the restart, unless it was done,
// and that nothing is returned twice.
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
	// Kill the helper, and keep reading until its stdout ends to learn
	// everything it was promised.
	var (
		added  = make(map[uint64]string) // id → key
		done   = make(map[uint64]bool)
		killed bool
	)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var (
			id  uint64
			key string
		)
		switch {
		case strings.HasPrefix(sc.Text(), "add "):
			if _, err := fmt.Sscanf(sc.Text(), "add %d %s", &id, &key); err != nil {
				t.Fatalf("helper printed %q: %v", sc.Text(), err)
			}
			if prev, dup := added[id]; dup {
				t.Errorf("Add returned id %d for %s and %s", id, prev, key)
			}
			added[id] = key
		case strings.HasPrefix(sc.Text(), "done "):
			if _, err := fmt.Sscanf(sc.Text(), "done %d", &id); err != nil {
				t.Fatalf("helper printed %q: %v", sc.Text(), err)
			}
			done[id] = true
		default:
			t.Fatalf("helper printed %q", sc.Text())
		}
		if len(added) >= 1500 && !killed {
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

	var log logBuffer
	s, items, err := spool.Open(dir, spool.WithSegmentBytes(crashSegBytes), spool.WithLogger(log.logger()))
	if err != nil {
		t.Fatalf("Open after the crash: %v", err)
	}
	defer s.Close()
	pending := make(map[uint64]bool)
	var maxID uint64
	for _, it := range items {
		if pending[it.ID] {
			t.Errorf("Open returned id %d twice", it.ID)
		}
		if it.ID <= maxID {
			t.Errorf("Open returned id %d after %d", it.ID, maxID)
		}
		pending[it.ID], maxID = true, it.ID
		// Items the helper was not yet told about have keys we do not
		// know, but their data must still be whole.
		key, _, _ := strings.Cut(string(it.Data), ":")
		var g, i int
		if _, err := fmt.Sscanf(key, "g%d-i%d", &g, &i); err != nil {
			t.Errorf("item %d has data %.40q", it.ID, it.Data)
			continue
		}
		if want := crashData(key, i*7919%(16<<10)); !bytes.Equal(it.Data, want) {
			t.Errorf("item %d has %d bytes of data for %s, want %d", it.ID, len(it.Data), key, len(want))
		}
		if k, ok := added[it.ID]; ok && k != key {
			t.Errorf("item %d has the data of %s, want %s", it.ID, key, k)
		}
	}
	lost, replayed := 0, 0
	for id, key := range added {
		switch {
		case !done[id] && !pending[id]:
			lost++
			if lost <= 10 {
				t.Errorf("item %d (%s) was acknowledged and not done, but is not pending", id, key)
			}
		case done[id] && pending[id]:
			replayed++ // a done that did not reach the disk
		}
		maxID = max(maxID, id)
	}
	st := s.Stats()
	t.Logf("killed after %d acknowledged adds and %d dones: %d pending on reopen, %d of them done before the kill, %d lost; %d segments, %d bytes; log: %q",
		len(added), len(done), len(items), replayed, lost, st.Segments, st.DiskBytes, log.String())
	if it, err := s.Add(t.Context(), []byte("after")); err != nil || it.ID <= maxID {
		t.Errorf("Add after the crash = %d, %v; want an id above %d", it.ID, err, maxID)
	}
}
