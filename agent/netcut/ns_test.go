//go:build linux

package netcut

import (
	"errors"
	"strconv"
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

// TestRefuseSame checks the guard that keeps Cut off the node's own
// namespace, on throwaway namespaces: running Cut on the host's namespace to
// test it would cut the host's sessions if the guard were broken.
func TestRefuseSame(t *testing.T) {
	a, b := newNS(t), newNS(t)
	self := "/proc/self/fd/" + strconv.Itoa(a.fd)
	if err := a.refuseSame(self); !errors.Is(err, ErrOwnNamespace) {
		t.Errorf("refuseSame(itself) = %v; want ErrOwnNamespace", err)
	}
	if err := b.refuseSame(self); err != nil {
		t.Errorf("refuseSame(another namespace) = %v; want nil", err)
	}
	if err := a.refuseSame("/proc/self/ns/net"); err != nil {
		t.Errorf("refuseSame(the host's) for a throwaway namespace = %v; want nil", err)
	}
}
