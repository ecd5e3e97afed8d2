package tamper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
)

// LeaseName is the Lease in kir's namespace whose holder is the one
// active guard; kir release marks a release only where it exists.
const LeaseName = contain.GuardLease

// Defaults used when Options leave them zero.
const (
	DefaultResync        = 30 * time.Second
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	// DefaultUnremembered is how long a kir quarantine policy may stand
	// without its memory before the guard reports it: kir contain writes
	// the memory right after the policy.
	DefaultUnremembered = 10 * time.Second
)

// Options configure Run.
type Options struct {
	// Kube is the client the guard watches and writes with (kir serve's).
	Kube kubernetes.Interface
	// Namespace is kir's namespace: the guard's Lease, its memory and the
	// release marks. "" means action.DefaultKirNamespace.
	Namespace string
	// Identity names this replica in the Lease; "" means the host name.
	Identity string
	// Watch, when set, is the one namespace whose quarantines are guarded
	// (tests beside each other on one cluster); "" guards every namespace.
	Watch string
	// Resync is how often everything is checked again, whatever the
	// watches said (0: DefaultResync).
	Resync time.Duration
	// Unremembered is how long a policy labelled as kir's quarantine may
	// stand without its memory before it is reported (0:
	// DefaultUnremembered).
	Unremembered time.Duration
	// LeaseDuration, RenewDeadline and RetryPeriod are the leader
	// election's (0: the defaults above).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Report, when set, is told each finding once the guard acted on it
	// (Events and the log line are the guard's own).
	Report func(ctx context.Context, f Finding)
	// Fence, when set, checks every resync that kir's admission policies
	// are installed and unchanged (package fence): a problem it returns is
	// reported as a finding of kind FenceChanged.
	Fence func(ctx context.Context) (problem string, err error)
	// Log receives what the guard does; nil logs nothing.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = action.DefaultKirNamespace
	}
	if o.Identity == "" {
		o.Identity, _ = os.Hostname()
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	if o.Unremembered <= 0 {
		o.Unremembered = DefaultUnremembered
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline <= 0 {
		o.RenewDeadline = min(DefaultRenewDeadline, o.LeaseDuration*2/3)
	}
	if o.RetryPeriod <= 0 {
		o.RetryPeriod = min(DefaultRetryPeriod, o.RenewDeadline/2)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Run guards kir's quarantines until ctx ends: it competes for the Lease
// LeaseName, and while it holds it, watches and restores. A replica that
// loses the Lease stops acting and competes again.
func Run(ctx context.Context, o Options) error {
	if o.Kube == nil {
		return errors.New("tamper: a Kubernetes client is required")
	}
	o = o.withDefaults()
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metaOf(LeaseName, o.Namespace),
				Client:     o.Kube.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
			},
			LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					o.Log.Info("tamper guard: leading; watching kir's quarantines", "lease", o.Namespace+"/"+LeaseName, "identity", o.Identity)
					newGuard(o).run(ctx)
				},
				OnStoppedLeading: func() { o.Log.Info("tamper guard: no longer leading", "identity", o.Identity) },
			},
		})
		if err != nil {
			return fmt.Errorf("tamper: leader election: %w", err)
		}
		le.Run(ctx)
	}
	return nil
}
