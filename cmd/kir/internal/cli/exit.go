package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/guard"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// Exit codes, the same for every command. Scripts rely on them; each has
// its row in exitCodes, which --help and the README are generated from.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitNotFound    = 3
	ExitForbidden   = 4
	ExitUnreachable = 5
	ExitPartial     = 6
	ExitUnverified  = 7
	ExitUnsigned    = 8
	ExitConflict    = 9
	ExitRefused     = 10
	ExitNotEnforced = 11
	ExitHeld        = 12
	ExitDenied      = 13
)

// ExitStatus documents one exit code.
type ExitStatus struct {
	Code int
	// Name is a short name for the code, as scripts may call it.
	Name string
	// Meaning is what the code says, in one line; `code` spans are
	// Markdown.
	Meaning string
}

// exitCodes is every exit code kir ends with, in order.
var exitCodes = []ExitStatus{
	{ExitOK, "ok", "done, or nothing to do (releasing what kir never contained says so)"},
	{ExitFailure, "failure", "unexpected failure"},
	{ExitUsage, "usage", "bad usage or invalid input"},
	{ExitNotFound, "not-found", "target not found"},
	{ExitForbidden, "forbidden", "forbidden by RBAC, or not authenticated"},
	{ExitUnreachable, "unreachable", "API server unreachable or timed out"},
	{ExitPartial, "partial", "partial: some steps done, the result lists which; rerunning finishes"},
	{ExitUnverified, "unverified", "`kir evidence verify`: the evidence does not verify (changed, missing or added files, broken custody, bad signature)"},
	{ExitUnsigned, "unsigned", "`kir evidence verify`: hashes and custody hold, but the signature was not checked (no `--key`)"},
	{ExitConflict, "conflict", "`kir rotate`: someone else wrote the secret meanwhile; kir stopped and overwrote nothing"},
	{ExitRefused, "refused", "the run would act on what kir never targets (kir's namespace, `kube-system`, the Falco namespace, the `kir-protect` list): nothing done; `--force` overrides"},
	{ExitNotEnforced, "not-enforced", "the pod is labelled and its quarantine policy stored, but the node agent saw the node not enforce it within `--enforce-timeout`: the pod is NOT contained"},
	{ExitHeld, "held", "the run stopped before a step that needs approval (revoking tokens, draining a node), with no `--yes` and no terminal to ask: what ran before it stands; the report names the command that approves it"},
	{ExitDenied, "denied", "a step that needs approval was denied (answered no at the prompt): what ran before it stands, it and the steps after it did not run"},
}

// ExitCodes returns the exit-code table.
func ExitCodes() []ExitStatus { return append([]ExitStatus(nil), exitCodes...) }

// exitCodesHelp documents the codes in --help.
func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("EXIT CODES:")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "\n   %d  %s", e.Code, strings.ReplaceAll(e.Meaning, "`", ""))
	}
	return b.String()
}

// usageError marks bad input.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// partialError marks a failure after some writes were done.
type partialError struct{ err error }

func (e partialError) Error() string { return e.err.Error() }
func (e partialError) Unwrap() error { return e.err }

// ExitCode maps an error to kir's exit code.
func ExitCode(err error) int {
	var u usageError
	var p partialError
	var netErr net.Error
	var urlErr *url.Error
	var codeErr exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &codeErr):
		return codeErr.code
	case errors.As(err, new(heldError)):
		return ExitHeld
	case errors.As(err, new(deniedError)):
		return ExitDenied
	case errors.Is(err, action.ErrNotEnforced):
		return ExitNotEnforced
	case errors.As(err, &p):
		return ExitPartial
	case errors.As(err, new(*guard.RefusedError)):
		return ExitRefused
	case errors.As(err, &u), errors.As(err, new(*playbooks.ParamError)), errors.As(err, new(*playbooks.StepParamError)),
		errors.As(err, new(*playbooks.LoadError)):
		return ExitUsage
	case errors.Is(err, rotate.ErrConcurrentWrite):
		return ExitConflict
	case apierrors.IsNotFound(err), errors.Is(err, contain.ErrNoMatch), errors.Is(err, ErrRunNotFound), errors.Is(err, rotate.ErrNotFound):
		return ExitNotFound
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), errors.As(err, new(forbiddenError)):
		return ExitForbidden
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return ExitUsage
	case errors.As(err, new(*fs.PathError)), errors.As(err, new(*os.LinkError)):
		// A file's error, before the network cases: syscall.Errno
		// satisfies net.Error.
		return ExitFailure
	case errors.Is(err, context.DeadlineExceeded), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err),
		apierrors.IsServiceUnavailable(err), errors.As(err, &netErr), errors.As(err, &urlErr):
		return ExitUnreachable
	}
	return ExitFailure
}
