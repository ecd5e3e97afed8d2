//go:build linux

package netcut

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenNSRejectsOtherFiles(t *testing.T) {
	needRoot(t)
	for _, path := range []string{"/proc/self/ns/uts", "/dev/null", "/nonexistent/ns/net"} {
		if ns, err := OpenNS(path); err == nil {
			ns.Close()
			t.Errorf("OpenNS(%s) succeeded; want an error", path)
		}
	}
}

// TestDo: fn runs in the namespace, its error comes back, and the caller's
// threads never leave the host namespace.
func TestDo(t *testing.T) {
	ns := newNS(t)
	var want, inside, host unix.Stat_t
	if err := unix.Fstat(ns.fd, &want); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := ns.Do(func() error {
		if err := unix.Stat("/proc/thread-self/ns/net", &inside); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Do returned %v; want fn's error", err)
	}
	if inside.Ino != want.Ino {
		t.Errorf("fn ran in namespace inode %d; want %d", inside.Ino, want.Ino)
	}
	if err := unix.Stat("/proc/self/ns/net", &host); err != nil {
		t.Fatal(err)
	}
	if host.Ino == want.Ino {
		t.Error("the test process itself is in the throwaway namespace")
	}
	ns.Close()
	if err := ns.Do(func() error { return nil }); err == nil {
		t.Error("Do on a closed namespace succeeded")
	}
	if err := (*NS)(nil).Do(func() error { return nil }); err == nil {
		t.Error("Do on a nil namespace succeeded")
	}
}
