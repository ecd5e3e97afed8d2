//go:build linux

package volatile

import (
	"bytes"
	"strings"
)

// MatchPod returns a match, for [Processes], of the processes of the pod
// with the given UID, from the contents of their /proc/PID/cgroup. The pod's
// cgroup names its UID with either cgroup driver, whatever the runtime:
// cgroupfs …/pod<UID>/…, systemd …-pod<UID with "-" as "_">.slice/…. An
// empty UID matches nothing (it would otherwise match every pod).
func MatchPod(uid string) func(cgroup []byte) bool {
	if uid == "" {
		return func([]byte) bool { return false }
	}
	cgroupfs := []byte("pod" + uid)
	systemd := []byte("pod" + strings.ReplaceAll(uid, "-", "_"))
	return func(cg []byte) bool {
		return bytes.Contains(cg, cgroupfs) || bytes.Contains(cg, systemd)
	}
}
