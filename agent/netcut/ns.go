//go:build linux

package netcut

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// nsGetNSType is NS_GET_NSTYPE, _IO(0xb7, 0x3), from linux/nsfs.h.
const nsGetNSType = 0xb703

// NS is an open handle on a network namespace. Holding it keeps the
// namespace alive even after the processes in it are gone.
type NS struct {
	fd   int
	path string
}

// OpenNS opens the network namespace at path, such as /proc/PID/ns/net or a
// bind mount under /run/netns. It fails if path is not a network namespace.
func OpenNS(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	kind, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err != nil || kind != unix.CLONE_NEWNET {
		unix.Close(fd)
		if err == nil {
			err = errors.New("not a network namespace")
		}
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return &NS{fd: fd, path: path}, nil
}

// ErrOwnNamespace means a Cut was aimed at the network namespace of the
// calling process itself — for the agent, the node's: a hostNetwork pod's
// namespace is the node's, and cutting it would cut every session of the node.
var ErrOwnNamespace = errors.New("refusing to act on the caller's own network namespace")

// refuseSame returns ErrOwnNamespace if ns is the namespace at path.
func (ns *NS) refuseSame(path string) error {
	var a, b unix.Stat_t
	if err := unix.Fstat(ns.fd, &a); err != nil {
		return fmt.Errorf("reading network namespace %s: %w", ns.path, err)
	}
	if err := unix.Stat(path, &b); err != nil {
		return fmt.Errorf("reading network namespace %s: %w", path, err)
	}
	if a.Dev == b.Dev && a.Ino == b.Ino {
		return fmt.Errorf("%s is %s: %w", ns.path, path, ErrOwnNamespace)
	}
	return nil
}

// String returns the path the namespace was opened from.
func (ns *NS) String() string { return ns.path }

// Close releases the handle. Sockets opened inside the namespace stay valid.
func (ns *NS) Close() error {
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Do runs fn on an OS thread switched into the namespace and returns its
// error. Sockets fn creates belong to the namespace for their whole life, so
// fn should create what it needs and may use it after Do returns. Goroutines
// fn starts do not run in the namespace.
//
// fn runs on a goroutine of its own, locked to its thread. If the thread
// cannot be switched back to its original namespace, it stays locked and Go
// discards it when that goroutine ends, so no other goroutine ever runs in
// the wrong namespace.
func (ns *NS) Do(fn func() error) error {
	if ns == nil || ns.fd < 0 {
		return errors.New("entering network namespace: no namespace (nil or closed)")
	}
	done := make(chan error, 1)
	go func() { done <- ns.doLocked(fn) }()
	return <-done
}

func (ns *NS) doLocked(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening the thread's own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", ns.path, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Keep the thread locked: Go ends it with this goroutine.
		return errors.Join(fnErr, fmt.Errorf("leaving network namespace %s: %w", ns.path, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
