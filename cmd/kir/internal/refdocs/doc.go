// Package refdocs generates kir's reference documentation — the action
// catalogue (docs/actions.md) and the playbook reference
// (docs/playbooks.md) — from the action registry, the playbook format table
// and the built-in playbooks, so that the docs cannot drift from the code:
// a test compares them, and `make docs` rewrites them.
package refdocs
