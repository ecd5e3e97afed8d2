// Package cli wires kir's commands: each command turns its flags into
// parameters and calls library code. Nothing here decides how a pod is
// contained; it decides only how a person asks for it and sees the result.
package cli
