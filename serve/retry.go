package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"kir.dev/kir/playbooks"
)

// Retries. A run that failed for a reason a retry may fix (transient) does
// not end its key: its claim stays open, retryable, with the run's id and
// the attempts made so far, and the key's next alert after a backoff — on
// any replica — resumes that run (playbooks.Engine.Resume: the steps that
// succeeded are not run again, so the pod is contained once and its
// evidence stays in the run's one bundle). An alert before the backoff has
// passed is a duplicate. After DefaultRetryAttempts attempts, or a failure
// a retry cannot fix, the key ends as a run that succeeded does: its
// window of duplicates starts and its claim is finished.
//
// A replica resumes the run only if it can read the run's journal: with a
// state directory the replicas share (a shared volume). With state of its
// own (an emptyDir, as the Deployment has), the other replica's journal is
// out of reach: it starts a run of its own under the same claim, counting
// the same attempts. That run snapshots the pod again into a bundle of its
// own; the cluster is still changed once, as kir's writes are idempotent.
const (
	// DefaultRetryAttempts caps the runs (a first one and its resumes)
	// one key's transient failures get.
	DefaultRetryAttempts = 5
	// DefaultRetryBackoff is the wait after a first transient failure;
	// it doubles with each further one (15 s, 30 s, 1 min, 2 min: within
	// a route's usual 10-minute window).
	DefaultRetryBackoff = 15 * time.Second
)

// backoff is the wait before the key's next attempt after attempts
// transient failures.
func backoff(base time.Duration, attempts int) time.Duration {
	return base << min(max(attempts-1, 0), 10)
}

// transient reports whether err, what stopped a run or the joined errors
// of its failed steps, is worth a retry: every one of the failures is one
// that the same request may not meet again. Transient:
//
//   - the API server's 5xx (internal error, unavailable, server timeout),
//     429 Too Many Requests, 409 Conflict (a conflict that outlasted the
//     action's own retries on conflict), and request timeouts;
//   - a step that timed out (context.DeadlineExceeded);
//   - connection errors: refused, reset, EOF mid-response, timeouts of
//     the network, a lost HTTP/2 connection.
//
// Everything else is permanent, and retrying would only repeat it: 400 Bad
// Request, 401, 403 Forbidden, 404 Not Found, 405, 410, 422 Invalid,
// parameters a step's action refused (playbooks.StepParamError),
// a playbook that cannot run, a journal or bundle that cannot be written,
// and any error whose kind is unknown (an action that did not wrap its
// cause with %w): treated as today, the key's window starts.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var stepParam *playbooks.StepParamError
	if errors.As(err, &stepParam) {
		return false
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs := joined.Unwrap()
		for _, e := range errs {
			if !transient(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	if status, ok := err.(apierrors.APIStatus); ok {
		return transientStatus(status)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF),
		utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsHTTP2ConnectionLost(err):
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if _, ok := err.(*net.OpError); ok {
		return true // dialing, reading or writing the connection failed
	}
	if next := errors.Unwrap(err); next != nil {
		return transient(next)
	}
	return false
}

// transientStatus classifies an API server's answer.
func transientStatus(status apierrors.APIStatus) bool {
	err, _ := status.(error)
	code := status.Status().Code
	switch {
	case code == http.StatusNotImplemented:
		return false // the same request gets the same answer
	case apierrors.IsConflict(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err):
		return true
	}
	return code >= http.StatusInternalServerError
}
