// Package rotate replaces the credentials a compromised pod could read:
// secrets in HashiCorp Vault (KV v2) and AWS Secrets Manager, Kubernetes
// service-account tokens, and kubeconfigs.
//
// A rotation is a playbook run (rotate-secret, rotate-kubeconfig,
// rotate-serviceaccount), so it is journaled step by step in the same store
// as every other run: issue the new value, optionally hand it to the system
// that uses it and test it, switch to it, and, where the store has one,
// retire the old one. Each step is idempotent given the journal: an action
// notes (action.Env.Note) the version it read and a keyed hash of the value
// it is about to write before it writes, so that a run killed at any point
// and resumed finds its own write instead of making a second one, and a
// rollback always knows which version to go back to.
//
// Values never leave memory: they are generated from crypto/rand (or read
// from a file the responder names), written to the store, and otherwise
// appear only as version ids and fingerprints (HMAC-SHA256 keyed with the
// rotation id) in results, journals and evidence.
package rotate
