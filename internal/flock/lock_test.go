package flock_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"kir.dev/kir/internal/flock"
)

// open opens path afresh: flock locks belong to the open file
// description, so two opens conflict even in one process.
func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := flock.TryLock(a, false); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no flock(2) here")
	} else if err != nil {
		t.Fatalf("shared lock: %v", err)
	}
	if err := flock.TryLock(b, false); err != nil {
		t.Errorf("second shared lock: %v, want none", err)
	}
	if err := flock.TryLock(b, true); !errors.Is(err, flock.ErrLocked) {
		t.Errorf("exclusive lock beside a shared one: %v, want ErrLocked", err)
	}
	if err := flock.Unlock(a); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := flock.TryLock(b, true); err != nil {
		t.Errorf("exclusive lock once the other is dropped: %v", err)
	}
	if err := flock.TryLock(a, false); !errors.Is(err, flock.ErrLocked) {
		t.Errorf("shared lock beside an exclusive one: %v, want ErrLocked", err)
	}
}
