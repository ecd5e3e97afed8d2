// Package guard keeps kir from aiming at what keeps the cluster, and kir
// itself, alive: every run passes its Guard before any step (the engine's
// Guard hook, playbooks.Engine.Guard), from the command line and from
// kir serve alike.
//
// # What is never a target
//
// Built in, and not configurable away: kir's own namespace (and so every
// pod of kir's, kir serve's replicas included), kube-system, and the Falco
// namespace (default falco). Besides these, a protect list read from the
// cluster at each run, so that the command line and every serve replica
// agree: the ConfigMap kir-protect in kir's namespace, with the keys
//
//	namespaces: |      # one namespace per line; blank lines and # comments ignored
//	  payments
//	podSelectors: |    # one label selector per line (kubectl -l syntax), any namespace
//	  app.kubernetes.io/name=falcosidekick
//	  tier in (dns, ingress)
//	falcoNamespace: falco-system   # optional: where Falco runs (default falco)
//
// An absent ConfigMap means the built-in list alone. One that cannot be
// read, or that does not parse, refuses every run (the guard fails
// closed) and says why.
//
// # How targets are found
//
// From the run's bound parameters, by name, so that any playbook (a
// user's too) is guarded the same way: namespace with name (a pod) or
// selector (the pods it matches now: one protected pod refuses the run),
// and node or nodes. A node is protected when it is a control-plane node
// (labelled node-role.kubernetes.io/control-plane) or when kir's own pods
// or kube-system's control-plane pods (tier=control-plane) run on it;
// what else runs on a node does not protect it, so that a node an
// attacker's pod shares with, say, CoreDNS can still be cordoned.
//
// Runs of playbooks that undo or only read (metadata.category release,
// rollback or collection) are never refused: undoing what a person forced
// must stay possible.
//
// # Refusal and override
//
// A refused run starts no step, writes nothing and is not journaled:
// the engine returns a *RefusedError naming each rule and target. A
// person at the command line may pass --force: the run then goes on, and
// what was overridden is recorded in the run's journal (its run-started
// record, copied into the evidence bundle with the custody log's run
// entry) and in its warnings. kir serve never forces.
package guard
