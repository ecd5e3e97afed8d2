//go:build linux

// Package netcut holds the network mechanics of kir's node agent: entering a
// pod's network namespace, probing from inside it, listing and destroying the
// pod's sockets, and deleting the conntrack entries of the pod's addresses.
//
// The agent uses them in a fixed order for a newly quarantined pod: [Probe]
// from inside the pod (and, as a control, from the host with a nil [NS]) to
// confirm the policy is enforced, then [Cut] the pod's open sessions, then
// [Conntrack.DeleteFlows] for the pod's IPs in the host namespace, then
// re-check with [List] and [Conntrack.CountFlows]. The package decides
// nothing; it reports what it saw and did.
//
// # Namespaces
//
// A socket belongs to the network namespace it was created in, whatever
// thread later uses it. Every socket this package opens — the probe's TCP
// socket, the sock_diag netlink socket, the conntrack netlink socket — is
// created inside the target namespace through [NS.Do], so nothing can act on
// the host's sockets by accident: [List] and [Cut] refuse a nil [NS].
//
// # Sockets
//
// [List] and [Cut] speak NETLINK_SOCK_DIAG directly (inet_diag_req_v2,
// inet_diag_msg) for TCP and UDP over IPv4 and IPv6. [Cut] destroys with
// SOCK_DESTROY every TCP socket that can carry data (everything but LISTEN,
// TIME_WAIT and CLOSE) and every connected UDP socket; the kernel aborts a TCP
// socket with a RST to its peer and reports ECONNABORTED to its owner. LISTEN
// sockets and unconnected UDP sockets are never touched, so the pod's
// processes keep running and the pod stays as it was for forensics. SOCK_DESTROY
// needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN over the namespace; without
// them [Cut] fails with [ErrDestroyUnsupported] or EPERM, never silently.
//
// # Conntrack
//
// Enforcers built on iptables accept "RELATED,ESTABLISHED" before any policy
// rule, so a session opened before the policy keeps flowing while its
// conntrack entry lives. [Conntrack.DeleteFlows] deletes every entry whose
// original or reply tuple names one of the pod's addresses: a Service flow
// DNATed to the pod names the pod only in its reply tuple. Enforcers that keep
// their own connection tracking (eBPF) are not affected by this step.
//
// Everything here needs root (CAP_SYS_ADMIN for setns, CAP_NET_ADMIN for the
// rest) and is Linux only.
package netcut
