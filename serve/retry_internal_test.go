package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
)

func TestTransient(t *testing.T) {
	t.Parallel()
	np := schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}
	unavailable := apierrors.NewServiceUnavailable("etcd leader changed")
	forbidden := apierrors.NewForbidden(np, "q", errors.New("RBAC"))
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"503", unavailable, true},
		{"503 wrapped", fmt.Errorf("isolating pod a/b: applying NetworkPolicy q: %w", unavailable), true},
		{"500", apierrors.NewInternalError(errors.New("boom")), true},
		{"504 server timeout", apierrors.NewServerTimeout(np, "patch", 1), true},
		{"timeout", apierrors.NewTimeoutError("slow", 1), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"409 conflict that persisted", apierrors.NewConflict(np, "q", errors.New("changed")), true},
		{"step timed out", fmt.Errorf("step isolate timed out after 2m: %w", context.DeadlineExceeded), true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"EOF mid-response", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{"403", forbidden, false},
		{"404", apierrors.NewNotFound(np, "q"), false},
		{"400", apierrors.NewBadRequest("no"), false},
		{"422", apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "p", nil), false},
		{"401", apierrors.NewUnauthorized("who"), false},
		{"501", apierrors.NewGenericServerResponse(501, "patch", np, "q", "", 0, false), false},
		{"bad parameters", &playbooks.StepParamError{Step: "isolate", Err: unavailable}, false},
		{"unknown", errors.New("something else"), false},
		{"all transient", errors.Join(unavailable, fmt.Errorf("pod x: %w", context.DeadlineExceeded)), true},
		{"one permanent", errors.Join(unavailable, forbidden), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("%s: transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// retryServer is a server with what end needs: no spool, no engine.
func retryServer(now *time.Time) *server {
	o := withDefaults(Options{Now: func() time.Time { return *now }, RetryBackoff: 10 * time.Second})
	return &server{o: o, keys: newKeyTable()}
}

func newTask(key string) *task {
	it := &item{id: 1}
	it.left.Store(1 << 20) // never done: there is no spool
	return &task{item: it, match: falco.Match{Playbook: "contain-pod", Key: key, Window: 10 * time.Minute}}
}

// A run that failed for a reason a retry cannot fix starts the key's
// window, as a succeeded one does: the next alert is a duplicate, long
// after any backoff. A transient failure starts only the backoff, after
// which the next alert resumes the same run; its last attempt starts the
// window.
func TestEndStartsWindowUnlessTransient(t *testing.T) {
	t.Parallel()
	np := schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	s := retryServer(&now)
	log := s.o.Log

	enter := func(key string) (*task, bool, bool) {
		next := newTask(key)
		run, dup := s.keys.enter(key, next, now)
		return next, run, dup
	}
	first, run, _ := enter("forbidden")
	if !run {
		t.Fatal("a new key's first alert does not run")
	}
	s.end(ctx, first, ending{run: "r1", status: playbooks.RunFailed, cause: apierrors.NewForbidden(np, "q", errors.New("RBAC")), resumable: true}, nil, log)
	now = now.Add(5 * time.Minute) // past every backoff, within the window
	if _, run, dup := enter("forbidden"); run || !dup {
		t.Errorf("after a forbidden failure, an alert 5 minutes later: run %v, duplicate %v; want a duplicate", run, dup)
	}
	if got := value(t, s.o.Metrics.Runs.WithLabelValues("contain-pod", playbooks.RunFailed)); got != 1 {
		t.Errorf("kir_runs_total{result=failed} = %v, want 1", got)
	}

	first, _, _ = enter("unavailable")
	s.end(ctx, first, ending{run: "r2", status: playbooks.RunPartial, cause: apierrors.NewServiceUnavailable("etcd"), resumable: true}, nil, log)
	now = now.Add(9 * time.Second)
	if _, run, dup := enter("unavailable"); run || !dup {
		t.Errorf("within the backoff: run %v, duplicate %v; want a duplicate", run, dup)
	}
	now = now.Add(2 * time.Second)
	retried, run, _ := enter("unavailable")
	if !run || retried.resume != "r2" || retried.attempts != 1 {
		t.Fatalf("after the backoff: run %v, resume %q, attempts %d; want to resume r2 after 1 attempt", run, retried.resume, retried.attempts)
	}
	if got := value(t, s.o.Metrics.Runs.WithLabelValues("contain-pod", "retried")); got != 1 {
		t.Errorf("kir_runs_total{result=retried} = %v, want 1", got)
	}
	// Its attempts spent, the key ends as any run does.
	s.end(ctx, retried, ending{run: "r2", status: playbooks.RunPartial, cause: apierrors.NewServiceUnavailable("etcd"), resumable: true, attempts: s.o.RetryAttempts - 1}, nil, log)
	now = now.Add(5 * time.Minute)
	if _, run, dup := enter("unavailable"); run || !dup {
		t.Errorf("after the last attempt: run %v, duplicate %v; want a duplicate", run, dup)
	}
}

// A claim released for a retry is a duplicate (Backoff) on every replica
// until its time, then won once, with the run to resume and the attempts.
func TestClaimRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	kube := fake.NewClientset()
	replica := func(id string) *Claims {
		return &Claims{Client: kube, Namespace: "kir", Identity: id, Duration: 15 * time.Second, Now: func() time.Time { return now }}
	}
	a, b := replica("a"), replica("b")
	const key, window = "pod/ns/p", 10 * time.Minute
	won, err := a.Claim(ctx, key, window, "alert-1-0.a")
	if err != nil || won.State != Won {
		t.Fatalf("first claim: %+v, %v", won, err)
	}
	retryAt := now.Add(10 * time.Second)
	if _, err := a.Release(ctx, won.Lease, "alert-1-0.a", playbooks.RunPartial, 1, retryAt); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	for _, r := range []*Claims{a, b} {
		got, err := r.Claim(ctx, key, window, "alert-2-0."+r.Identity)
		if err != nil || got.State != Backoff || got.Run != "alert-1-0.a" || !got.RetryAt.Equal(retryAt) {
			t.Errorf("replica %s within the backoff: %+v, %v; want Backoff of alert-1-0.a until %s", r.Identity, got, err, retryAt)
		}
	}
	now = retryAt.Add(time.Second)
	got, err := b.Claim(ctx, key, window, "alert-3-0.b")
	if err != nil || got.State != Won || got.Resume != "alert-1-0.a" || got.Attempts != 1 {
		t.Fatalf("replica b after the backoff: %+v, %v; want to win it, resuming alert-1-0.a after 1 attempt", got, err)
	}
	if other, err := a.Claim(ctx, key, window, "alert-4-0.a"); err != nil || other.State != Held {
		t.Errorf("replica a while b retries: %+v, %v; want Held", other, err)
	}
	if _, err := b.Finish(ctx, got.Lease, "alert-1-0.a", playbooks.RunSucceeded); err != nil {
		t.Fatal(err)
	}
	if done, err := a.Claim(ctx, key, window, "alert-5-0.a"); err != nil || done.State != Finished || done.Run != "alert-1-0.a" {
		t.Errorf("after the retry succeeded: %+v, %v; want Finished by alert-1-0.a", done, err)
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
