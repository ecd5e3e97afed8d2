package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirPrefix starts the name of every cluster directory, followed by the pid
// of the process that owns it: kubetest-<pid>-<random>.
const dirPrefix = "kubetest-"

// keepMarker, in a cluster directory, protects it from sweepStale.
const keepMarker = "KIR_TEST_KEEP"

// keep reports whether cluster directories are kept for a post-mortem.
func keep() bool { return os.Getenv("KIR_TEST_KEEP") == "1" }

// makeDir creates the directory of a new cluster in memory (/dev/shm) where
// the machine has it, else in the system's temporary directory, first
// removing those left behind by dead processes. etcd's write-ahead log on a
// disk costs the kernel as much CPU as etcd itself; test data need not
// survive a reboot.
func makeDir() (string, error) {
	tmp := baseDir()
	sweepStale(tmp)
	dir, err := os.MkdirTemp(tmp, fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("creating cluster directory: %w", err)
	}
	if keep() {
		// Marked now: a test binary killed before Stop keeps it too.
		if err := os.WriteFile(filepath.Join(dir, keepMarker), nil, 0o600); err != nil {
			return "", fmt.Errorf("marking %s to be kept: %w", dir, err)
		}
	}
	return dir, nil
}

// baseDir is where cluster directories live: $KIR_TEST_TMPDIR, else
// /dev/shm when it is a writable directory, else os.TempDir().
func baseDir() string {
	if d := os.Getenv("KIR_TEST_TMPDIR"); d != "" {
		return d
	}
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err == nil && fi.IsDir() && syscall.Access(shm, 2 /* W_OK */) == nil {
		return shm
	}
	return os.TempDir()
}

// sweepStale removes the cluster directories in tmp whose owner died
// without calling Stop — killed, or a test that timed out — unless they are
// marked to be kept. Each holds some 120 MB of etcd write-ahead log.
func sweepStale(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return // nothing to sweep is no reason to fail a test
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), dirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processExists(pid) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		if _, err := os.Stat(filepath.Join(dir, keepMarker)); err == nil {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// processExists reports whether a process with that pid exists, zombies and
// processes of other users included.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
