// Package action defines kir's unit of work: an Action declares its
// parameters and the RBAC rules it needs, validates its parameters without
// I/O, and runs with a context against an Env. Actions know nothing of
// playbooks, alerts or the command line; a Registry value collects them.
package action
