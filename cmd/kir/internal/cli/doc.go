// Package cli wires kir's commands: each command turns its flags into
// parameters and calls library code. Nothing here decides how a pod is
// contained; it decides only how a person asks for it and sees the result.
//
// Each command has its file and a flag struct (containPodOptions, …) made
// of shared groups (kubeOptions, writeOptions, playbookOptions, …) whose
// flags are bound to the struct's fields. A command that runs a playbook
// lists, in a small table, which flag sets which playbook parameter
// (param); only the flags the user set are given, and one the playbook
// does not declare is a usage error. A command body reads: flags →
// params → one call.
//
// What a run did is told by its actions' outputs (action.Texter), decoded
// through the action registry; the printer here only loops over steps.
// The environment variables kir reads are listed in one table (env.go),
// through which every read goes and from which the secret stores'
// settings are built; the exit codes in another (exit.go). Both generate
// the README's tables (make docs) and --help's EXIT CODES.
package cli
