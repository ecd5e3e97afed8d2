package cli

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"kir.dev/kir/contain"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// Exit codes, the same for every command. Scripts rely on them.
const (
	ExitOK          = 0 // done, or nothing to do
	ExitFailure     = 1 // unexpected failure
	ExitUsage       = 2 // bad usage or invalid input
	ExitNotFound    = 3 // target not found
	ExitForbidden   = 4 // forbidden (RBAC) or not authenticated
	ExitUnreachable = 5 // API server unreachable or timed out
	ExitPartial     = 6 // some steps done: the result lists which; rerunning finishes
	// kir evidence verify:
	ExitUnverified = 7 // the evidence does not verify: a file changed, missing or added, custody broken, bad signature
	ExitUnsigned   = 8 // hashes and custody hold, but no --key was given: the signature was not checked
	// kir rotate:
	ExitConflict = 9 // someone else changed the secret meanwhile: nothing was overwritten
)

// exitCodesHelp documents the codes in --help.
const exitCodesHelp = `EXIT CODES:
   0  done, or nothing to do (releasing what kir never contained says so)
   1  unexpected failure
   2  bad usage or invalid input
   3  target not found
   4  forbidden by RBAC, or not authenticated
   5  API server unreachable or timed out
   6  partial: some steps done, the result lists which; rerunning finishes
   7  kir evidence verify: the evidence does not verify (changed, missing or added files, broken custody, bad signature)
   8  kir evidence verify: hashes and custody hold, but the signature was not checked (no --key)
   9  kir rotate: someone else wrote the secret meanwhile; kir stopped and overwrote nothing`

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
	case errors.As(err, &p):
		return ExitPartial
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
