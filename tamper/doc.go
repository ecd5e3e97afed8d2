// Package tamper is kir serve's guard of the quarantines kir made: it
// watches the pods kir quarantined (label kir.dev/quarantine), kir's
// quarantine NetworkPolicies and every other NetworkPolicy, cluster-wide,
// and re-checks them all on start and every resync. When a pod's
// quarantine label is removed or changed, or kir's policy deleted or
// changed, it writes kir's objects back within seconds, with the same
// builders kir contain writes them with (contain.Quarantine). A policy of
// anyone else that admits traffic to or from a quarantined pod
// (NetworkPolicies are additive) is reported loudly and never deleted:
// it is not kir's to remove.
//
// Each finding is an Event on the pod, a log line and, through
// Options.Report, whatever its caller adds (kir serve: a metric, a
// notification, a signed custody entry in the incident's evidence).
//
// Who did it cannot be known from here: a watch carries no identity, a
// DELETE leaves nothing behind, and the manager in managedFields is
// whatever the client said. A finding records that manager as
// "client-reported manager (unauthenticated)" and judges by comparing the
// objects with what kir wrote; the API server's audit log, or the
// admission fence (package fence), says who.
//
// Memory. An attacker who removes both the label and the policy leaves
// nothing in the pod's namespace that says the pod was quarantined, and
// anyone who may create NetworkPolicies there can create one labelled as
// kir's and named after a neighbour pod. So the guard learns a quarantine
// only from its memory in kir's namespace, where the pod's owner cannot
// write: a Lease kir-tamper-<pod UID> (contain.MemoryLease) holding the
// contain.Quarantine (the pod, its allow-list, kir's record). kir contain
// writes it once the pod's policy stands (before a wider policy, when it
// contains the pod again), and kir release deletes it right after its
// mark, before it lifts anything. A kir quarantine policy still without
// memory Options.Unremembered after the guard first saw it, or standing in
// another namespace than its pod's, is reported (PolicyUnremembered, once
// per namespace a minute) and left alone. A kir that may not write the
// memory (a responder without the Role kir-responder) still isolates the
// pod, and warns that the guard will not restore it. The guard never
// writes a memory: a policy that isolates the pod at least as tightly as
// its memory (kir contain again, between its two writes) and is still
// labelled and owned as kir's is left as it is; any other is restored.
// The response records (package record) hold only what serve itself ran,
// without the pod's UID or allow-list, and the evidence journals live on
// the disk of whichever machine contained the pod (a responder's laptop):
// neither knows every quarantine.

// Release. kir release writes a mark in kir's namespace
// (contain.ReleasingLease) before it removes anything, wherever a guard
// runs or ran (the Lease kir-tamper exists); the guard reads it after it
// read the pod and the policy and before it acts, so whatever removal it
// saw is either covered by the mark or not release's. It stands down for
// that pod, and once the policy is gone (release deletes it first)
// forgets the pod and deletes the mark. A mark no longer holds while the
// policy is still there if the policy is newer (contained again since) or
// the mark older than contain.ReleasingFor (the release failed): the pod
// is then still isolated, and guarding it again undoes no release.
//
// One guard acts across kir serve's replicas: the one that holds the
// Lease kir-tamper in kir's namespace (client-go leader election).
package tamper
