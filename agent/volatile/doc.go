//go:build linux

// Package volatile captures a pod's volatile process state from /proc: the
// evidence that disappears first (RFC 3227) and that cutting a pod's
// sessions partly destroys, so the node agent takes it just before the cut.
//
// [Processes] lists the processes whose /proc/PID/cgroup matches — a pod's,
// with [MatchPod], under either cgroup driver — each with its ids, start
// time, command line, executable (path, deleted or not, SHA-256 read through
// /proc/PID/exe), working directory and open file descriptors. [CopyExe]
// copies an executable's bytes, which for a binary deleted from disk (a
// dropped implant) survive only through /proc/PID/exe. [Sockets] lists the
// TCP and UDP sockets of the pod's network namespace with agent/netcut and
// joins each to the processes holding it, by inode; listening ports are the
// sockets in state LISTEN (TCP) or unconnected UDP sockets with a local port.
// [Tree] arranges the processes by parent.
//
// # What is never read
//
// /proc/PID/environ is never opened: a container's environment routinely
// holds credentials. The command line is read, as an investigator needs it,
// but it too may hold secrets passed as arguments: [Process.Cmdline] is
// sensitive, and [Process.Redacted] drops everything but argv[0].
//
// # What the agent needs, and why
//
// TestCapabilities checks this list, taking each capability away in turn,
// on another user's process, root processes with and without capabilities,
// and a non-dumpable one.
//
//   - hostPID (or the host's /proc mounted, given as procRoot): the pod's
//     processes are only visible in the host's PID namespace.
//   - CAP_SYS_PTRACE: /proc/PID/exe, /proc/PID/cwd and the /proc/PID/fd/N
//     links are guarded by the kernel's ptrace access mode check
//     (PTRACE_MODE_READ_FSCREDS). Without the capability a root agent
//     passes it only for a process of uid 0, dumpable, whose permitted
//     capabilities are a subset of the agent's: not for another user's
//     process, not for a container's root process with the runtime's
//     default capabilities (the agent drops those), and not for one that
//     made itself non-dumpable (prctl(PR_SET_DUMPABLE, 0): an implant can).
//   - CAP_DAC_READ_SEARCH: /proc/PID/fd is a directory of mode 0500 owned by
//     the process's user; a root whose capabilities were dropped (as the
//     agent's DaemonSet drops ALL) cannot list it for another user's
//     process without it, even with CAP_SYS_PTRACE.
//   - CAP_SYS_ADMIN (setns) and CAP_NET_ADMIN, for [Sockets], as
//     agent/netcut says.
//
// status, stat, cgroup and cmdline need nothing. What cannot be read is
// named in [Process.Errors] (with EACCES), never left out silently. A
// security module confining the agent (AppArmor, SELinux) may refuse the
// same reads; they show the same way.
//
// Nothing here stops the processes: a process may exit, or its PID be reused,
// during a scan. Each process's stat is read again after its other files and
// a process whose start time changed is left out; a process that is gone is
// left out; a field that could not be read is named in [Process.Errors].
//
// # Limits
//
// A scan is not atomic: a process can exec, fork or open files while it is
// read (a PID reused is caught by the start time; an exec is caught by
// [CopyExe], not by [Processes]). An executable on a file system that does
// not answer (FUSE) blocks its hashing between ctx checks. For a
// hostNetwork pod the namespace is the node's, and [Sockets] lists every
// socket of the node: keep those with PIDs.
//
// # Times
//
// The start time is field 22 of /proc/PID/stat, in clock ticks since boot.
// The tick rate is USER_HZ, read from the agent's own auxiliary vector
// (AT_CLKTCK in /proc/self/auxv, what sysconf(_SC_CLK_TCK) returns; it is
// one value for the whole kernel, and 100 on every architecture Linux
// supports today, used if auxv cannot be read). The wall-clock start adds
// that to the boot time, btime in /proc/stat: whole seconds, so the
// wall-clock start is good to about a second.
package volatile
