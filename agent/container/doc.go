//go:build linux

// Package container finds a pod's containers on the node, for the node
// agent: which processes are whose, each container's first process, its
// cgroup and the overlay upper directory that holds what was written into
// it (what agent/layer archives); and it freezes and thaws a container.
//
// [Find] takes the pod object (its UID and the runtime ids of its
// containers, init containers and ephemeral containers — a `kubectl debug`
// container is an attacker's favourite too) and scans the host's /proc.
// The pod's processes are those whose /proc/PID/cgroup names the pod
// ([volatile.MatchPod], either cgroup driver). A process belongs to the
// container whose id names a whole component of its cgroup path: "<id>"
// (cgroupfs driver: …/pod<UID>/<id>), "crio-<id>", or
// "cri-containerd-<id>.scope", "crio-<id>.scope", "docker-<id>.scope",
// "libpod-<id>.scope" (systemd driver). Never a substring: an id that is a
// prefix of another component (a short id, another container's) names
// nothing. The outermost such component wins, so a sub-cgroup the
// container made, whatever its name, stays the container's. The pod's
// other processes are the sandbox's (pause) or a container's that the
// status does not list: [Pod.SandboxPIDs].
//
// A container's leader is its process with the earliest start time
// (lowest PID on ties): its PID 1 unless that exited. The leader's
// /proc/PID/mountinfo gives the root file system: the first mount on "/"
// (a mount stacked on "/" afterwards is not the process's root — a
// process's root does not move when something is mounted over it — and
// may be the attacker's, naming a path in its own mount namespace). Its
// upperdir= option is the host path of the upper directory, as the runtime
// gave it when mounting (in the host's mount namespace): read it through
// [HostPath], PID 1's root, since the agent has its own mount namespace.
// mountinfo escapes space, tab, newline and backslash as octal, and
// overlayfs's options escape the comma too (seq_show_option), so the
// options are split on the commas left and each value unescaped; overlayfs
// then drops a backslash before any character (how a mounter puts "," or
// ":" in a path), and so does [Upper].
//
// # What it needs
//
// hostPID (or the host's /proc given as procRoot). /proc/PID/cgroup, stat
// and mountinfo need no capability. [HostPath] needs CAP_SYS_PTRACE
// (/proc/1/root is guarded by the ptrace access check on the host's
// init). [Freeze] writes the host's cgroup file system, reached the same
// way (hostRoot = HostPath(procRoot, "")) since the agent's own
// /sys/fs/cgroup is its container's: it needs that, and root.
//
// # Freezing
//
// [Freeze] uses the cgroup freezer: freezer.state on a v1 freezer
// hierarchy, cgroup.freeze on v2. A frozen process runs no instruction: it
// cannot notice anything, wipe a file or send a byte; new children of a
// frozen cgroup are frozen too, and leaving the cgroup needs privileges
// over the host's cgroup file system. The kernel still acts for it: TCP
// acknowledges data into its socket buffers, keepalives, and sends what
// was already queued; a fatal signal still kills a process frozen by the
// v2 freezer. The freezer works on a container's cgroup as named by its
// leader (a container's processes moved to another cgroup by a privileged
// attacker are not frozen).
//
// # Limits
//
// The scan is not atomic: a process may fork or exit while it runs, and a
// PID be reused (the start time is read with the cgroup). A container's
// processes are found by their cgroup: a process a privileged attacker
// moved into another pod's cgroup is that pod's. The cgroup path is
// relative to the agent's cgroup namespace: with a private one it starts
// with "/..", and [CgroupDir] finds the directory by the rest of the path.
// An absolute symbolic link on the host's path to the upper directory
// (/var/lib/containerd a link to another disk) resolves, through
// [HostPath], in the agent's root, not the host's: opening it then fails.
package container
