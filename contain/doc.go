// Package contain cuts compromised workloads off without destroying them:
// it isolates pods with a quarantine NetworkPolicy that selects only the
// compromised pod, detaches them from their controllers and Services on
// request, cordons and taints their nodes, drains nodes, and undoes exactly
// what it did. Every change is recorded on the cluster (on a pod, its
// quarantine label alone, which no pod can be too large to take; the
// record on kir's policy; Events), so release works from any machine.
//
// The functions take a kubernetes.Interface and plain values; the Action
// types at the bottom of each file adapt them to kir's action registry.
package contain
