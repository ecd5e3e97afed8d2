// Package refdocs generates every file of kir's that is derived from its
// source, so that none can drift from the code: the action catalogue
// (docs/actions.md) and the playbook reference (docs/playbooks.md), from
// the action registry, the playbook format table and the built-in
// playbooks; the README's tables of environment variables and exit codes,
// from the command line's tables; and the ClusterRoles of
// deploy/components/rbac/rbac.yaml, from the rules each action declares;
// and the admission fence, deploy/components/admission/fence.yaml, from
// package fence.
// One test compares them all, and `make docs` rewrites them.
package refdocs
