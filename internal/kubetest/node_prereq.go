package kubetest

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// ErrRealNodeUnavailable is wrapped by the error of a real node that cannot
// run on this machine (a binary, a package or a privilege is missing); the
// error names each missing piece.
var ErrRealNodeUnavailable = errors.New("the real test node cannot run on this machine")

// Binaries of the real node that tools/build.sh builds.
const (
	kubeletName    = "kubelet"
	kubeRouterName = "kube-router"
	pauseName      = "pause"
	containerdName = "containerd"
)

// nodeHostTools are the executables the node runs from PATH, and their
// Debian packages (tools/debs.sh installs them).
var nodeHostTools = map[string]string{
	"containerd":              "containerd",
	"containerd-shim-runc-v2": "containerd",
	"ctr":                     "containerd",
	"runc":                    "runc",
	"iptables":                "iptables",
	"iptables-save":           "iptables",
	"iptables-restore":        "iptables",
	"ip6tables-save":          "iptables",
	"ip6tables-restore":       "iptables",
	"ipset":                   "ipset",
	"conntrack":               "conntrack",
	"ip":                      "iproute2",
}

// nodeHostFiles are files the node needs, and what provides them.
var nodeHostFiles = map[string]string{
	cniBinDir + "/bridge":                          "Debian package containernetworking-plugins",
	cniBinDir + "/host-local":                      "Debian package containernetworking-plugins",
	cniBinDir + "/loopback":                        "Debian package containernetworking-plugins",
	busyboxPath:                                    "Debian package busybox-static",
	"/sys/fs/cgroup/memory":                        "the cgroup v1 memory controller",
	"/proc/sys/net/bridge/bridge-nf-call-iptables": "the br_netfilter kernel module (modprobe br_netfilter)",
}

// RealNodePrerequisites returns nil when this machine can run the real
// node, else an error wrapping ErrRealNodeUnavailable that names everything
// missing.
func RealNodePrerequisites() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (kubelet, containerd and kube-router run as root)")
	}
	if _, err := findBinaries(kubeletName, kubeRouterName, pauseName); err != nil {
		missing = append(missing, err.Error())
	}
	for _, tool := range slices.Sorted(maps.Keys(nodeHostTools)) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s in PATH (Debian package %s)", tool, nodeHostTools[tool]))
		}
	}
	for _, path := range slices.Sorted(maps.Keys(nodeHostFiles)) {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", path, nodeHostFiles[path]))
		}
	}
	if !memoryCgroup() {
		missing = append(missing, "the memory cgroup controller (/sys/fs/cgroup/memory, or memory in /sys/fs/cgroup/cgroup.controllers)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w; missing: %s", ErrRealNodeUnavailable, strings.Join(missing, "; "))
	}
	return nil
}

// memoryCgroup reports whether kubelet finds the memory controller, cgroup
// v1 or v2.
func memoryCgroup() bool {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return true
	}
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	return err == nil && slices.Contains(strings.Fields(string(b)), "memory")
}

// RequireRealNode skips the test when the machine cannot run the real
// node, saying what is missing — or fails it when CI=true: CI must run
// every test.
func RequireRealNode(t testing.TB) {
	t.Helper()
	err := RealNodePrerequisites()
	switch {
	case err == nil:
	case os.Getenv("CI") == "true":
		t.Fatalf("CI=true: %v", err)
	default:
		t.Skip(err)
	}
}
