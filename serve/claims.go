package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"kir.dev/kir/action"
)

// Names on the Leases that carry claims.
const (
	leasePrefix         = "kir-dedup-"
	LabelClaim          = "kir.dev/dedup"
	AnnotationKey       = "kir.dev/dedup-key"
	AnnotationUntil     = "kir.dev/dedup-until"
	AnnotationRun       = "kir.dev/run"
	AnnotationFinished  = "kir.dev/finished-at"
	AnnotationRunStatus = "kir.dev/run-status"
	// AnnotationAttempts counts the key's runs that failed for a transient
	// reason; AnnotationRetryAt, set while the claim waits for a retry, is
	// when the key's next alert may resume the run AnnotationRun names.
	AnnotationAttempts = "kir.dev/attempts"
	AnnotationRetryAt  = "kir.dev/retry-at"
)

// Claims give each deduplication key to one replica at a time, through a
// Lease named after the key that the API server creates or updates
// atomically (resourceVersion preconditions). A claim lasts the key's
// window: alerts for the key within it are duplicates. The holder renews
// the Lease while its run goes on; if the holder dies before finishing,
// the Lease expires and a replica holding an alert for the key takes the
// work over. A run that failed for a transient reason releases its claim
// for a retry instead of finishing it (Release): the key's first alert
// after the backoff, on any replica, wins it and resumes that run.
type Claims struct {
	Client    kubernetes.Interface
	Namespace string
	// Identity names this replica (holderIdentity).
	Identity string
	// Duration is how long a claim lives unrenewed.
	Duration time.Duration
	Now      func() time.Time
}

// ClaimState says what Claim found.
type ClaimState int

const (
	// Won: this replica holds the key and must run its playbook.
	Won ClaimState = iota
	// Finished: the key's run finished within its window: a duplicate.
	Finished
	// Held: another replica is running it; ask again at Expires to take
	// over should it die.
	Held
	// Backoff: the key's run failed for a transient reason and waits to
	// be retried at RetryAt: a duplicate until then.
	Backoff
)

// Claim is the outcome of Claims.Claim.
type Claim struct {
	State ClaimState
	// Lease is the claim's Lease as last read or written.
	Lease *coordinationv1.Lease
	// Holder is the replica that holds it; Run the run it recorded.
	Holder, Run string
	// Expires is when a Held claim lapses unless renewed.
	Expires time.Time
	// Resume, on a Won claim, is the run to resume: one that failed for a
	// transient reason, Attempts times so far. RetryAt is when a Backoff
	// claim may be retried.
	Resume   string
	Attempts int
	RetryAt  time.Time
}

// LeaseName is the Lease of a key.
func LeaseName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return leasePrefix + hex.EncodeToString(sum[:12])
}

// Claim tries to take key for window, for the run named run (recorded on
// the claim, so that a replica that takes it over can say whose it was).
func (c *Claims) Claim(ctx context.Context, key string, window time.Duration, run string) (Claim, error) {
	leases := c.Client.CoordinationV1().Leases(c.Namespace)
	for range 8 {
		now := c.Now().UTC()
		created, err := leases.Create(ctx, c.newLease(key, window, now, run), metav1.CreateOptions{})
		if err == nil {
			return Claim{State: Won, Lease: created, Holder: c.Identity}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return Claim{}, fmt.Errorf("claiming %q: %w", key, err)
		}
		l, err := leases.Get(ctx, LeaseName(key), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // deleted meanwhile: create again
		}
		if err != nil {
			return Claim{}, fmt.Errorf("claiming %q: %w", key, err)
		}
		cl := claimOf(l)
		until, _ := time.Parse(time.RFC3339Nano, l.Annotations[AnnotationUntil])
		retry := cl.retryable()
		switch {
		case now.Before(until) && l.Annotations[AnnotationFinished] != "":
			cl.State = Finished
			return cl, nil
		case retry && now.Before(cl.RetryAt):
			cl.State = Backoff
			return cl, nil
		case !retry && now.Before(until) && now.Before(cl.Expires) && cl.Holder != c.Identity:
			cl.State = Held
			return cl, nil
		}
		// Lapsed: its holder died before finishing, or its window is
		// over and this is a new incident, or its run waits for a retry
		// whose time has come. Take it, unless another replica was
		// faster (a conflict: read again).
		fresh := c.newLease(key, window, now, run)
		if now.Before(until) {
			fresh.Annotations[AnnotationUntil] = l.Annotations[AnnotationUntil] // same incident, same window
		}
		if retry {
			fresh.Annotations[AnnotationRun] = cl.Run
			fresh.Annotations[AnnotationAttempts] = strconv.Itoa(cl.Attempts)
		}
		fresh.ResourceVersion = l.ResourceVersion
		updated, err := leases.Update(ctx, fresh, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Claim{}, fmt.Errorf("taking over %q: %w", key, err)
		}
		won := Claim{State: Won, Lease: updated, Holder: c.Identity}
		if retry {
			won.Resume, won.Attempts = cl.Run, cl.Attempts
		}
		return won, nil
	}
	return Claim{}, fmt.Errorf("claiming %q: too many concurrent changes", key)
}

func (c *Claims) newLease(key string, window time.Duration, now time.Time, run string) *coordinationv1.Lease {
	t := metav1.NewMicroTime(now)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: LeaseName(key), Namespace: c.Namespace,
			Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir, LabelClaim: "true"},
			Annotations: map[string]string{
				AnnotationKey:   truncate(key, 1024),
				AnnotationUntil: now.Add(window).Format(time.RFC3339Nano),
				AnnotationRun:   run,
			},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(c.Identity),
			LeaseDurationSeconds: ptr.To(int32(max(1, c.Duration/time.Second))),
			AcquireTime:          &t,
			RenewTime:            &t,
		},
	}
}

func claimOf(l *coordinationv1.Lease) Claim {
	cl := Claim{Lease: l, Holder: ptr.Deref(l.Spec.HolderIdentity, ""), Run: l.Annotations[AnnotationRun]}
	if l.Spec.RenewTime != nil {
		cl.Expires = l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second)
	}
	cl.Attempts, _ = strconv.Atoi(l.Annotations[AnnotationAttempts])
	cl.RetryAt, _ = time.Parse(time.RFC3339Nano, l.Annotations[AnnotationRetryAt])
	return cl
}

// retryable says whether the claim's run waits for a retry (Release).
func (cl Claim) retryable() bool {
	return !cl.RetryAt.IsZero() && cl.Lease.Annotations[AnnotationFinished] == ""
}

// errLost is returned when another replica took a claim over.
var errLost = errors.New("the claim was taken over by another replica")

// update changes a claim this replica holds, rereading on conflicts.
func (c *Claims) update(ctx context.Context, l *coordinationv1.Lease, change func(*coordinationv1.Lease)) (*coordinationv1.Lease, error) {
	leases := c.Client.CoordinationV1().Leases(c.Namespace)
	for range 8 {
		next := l.DeepCopy()
		change(next)
		updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			return updated, nil
		}
		if !apierrors.IsConflict(err) {
			return l, err
		}
		if l, err = leases.Get(ctx, l.Name, metav1.GetOptions{}); err != nil {
			return l, err
		}
		if ptr.Deref(l.Spec.HolderIdentity, "") != c.Identity {
			return l, errLost
		}
	}
	return l, fmt.Errorf("updating claim %s: too many concurrent changes", l.Name)
}

// Renew extends a held claim.
func (c *Claims) Renew(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	return c.update(ctx, l, func(l *coordinationv1.Lease) {
		t := metav1.NewMicroTime(c.Now().UTC())
		l.Spec.RenewTime = &t
	})
}

// Finish marks a claim's run finished: alerts for the key are duplicates
// until its window ends.
func (c *Claims) Finish(ctx context.Context, l *coordinationv1.Lease, run, status string) (*coordinationv1.Lease, error) {
	return c.update(ctx, l, func(l *coordinationv1.Lease) {
		l.Annotations[AnnotationRun] = run
		l.Annotations[AnnotationRunStatus] = status
		l.Annotations[AnnotationFinished] = c.Now().UTC().Format(time.RFC3339Nano)
	})
}

// Release gives up a claim whose run failed for a transient reason, for
// a retry: the key's first alert at or after retryAt, on any replica, wins
// it and resumes run; alerts before then are duplicates (Backoff).
// attempts counts the key's transient failures, this one included.
func (c *Claims) Release(ctx context.Context, l *coordinationv1.Lease, run, status string, attempts int, retryAt time.Time) (*coordinationv1.Lease, error) {
	return c.update(ctx, l, func(l *coordinationv1.Lease) {
		l.Annotations[AnnotationRun] = run
		l.Annotations[AnnotationRunStatus] = status
		l.Annotations[AnnotationAttempts] = strconv.Itoa(attempts)
		l.Annotations[AnnotationRetryAt] = retryAt.UTC().Format(time.RFC3339Nano)
		delete(l.Annotations, AnnotationFinished)
	})
}

// Sweep deletes the claims whose window ended more than grace ago, and
// returns how many. Any replica may sweep: a delete is conditional on the
// Lease being the one it read.
func (c *Claims) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	leases := c.Client.CoordinationV1().Leases(c.Namespace)
	list, err := leases.List(ctx, metav1.ListOptions{LabelSelector: LabelClaim + "=true"})
	if err != nil {
		return 0, err
	}
	n := 0
	now := c.Now()
	for _, l := range list.Items {
		until, err := time.Parse(time.RFC3339Nano, l.Annotations[AnnotationUntil])
		if err != nil || now.Before(until.Add(grace)) {
			continue
		}
		if expires := claimOf(&l).Expires; l.Annotations[AnnotationFinished] == "" && now.Before(expires) {
			continue // still running past its window
		}
		err = leases.Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &l.ResourceVersion}})
		if err == nil {
			n++
		} else if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return n, err
		}
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
