package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/evidence"
	"kir.dev/kir/falco"
	"kir.dev/kir/internal/spool"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/record"
)

// Records mirror the alerts a replica accepts, and their runs, as
// Response records in the API server (package record). A match that
// starts a run is recorded before its alert's 202, so that the alert
// outlives this replica's spool: another replica takes over a record that
// is not finished and whose claim (this replica's, renewed while it
// works) expired. When the API server cannot be written, the alert is
// accepted all the same, in the local spool only, and /readyz and the
// metrics say so.
type Records struct {
	Store *record.Store
	// Kube renews this replica's heartbeat Lease, beside the records: a
	// record is taken over only from a replica whose heartbeat lapsed.
	Kube kubernetes.Interface
	// Identity names this replica in claims.
	Identity string
	// ClaimFor is how long a claim lasts unrenewed; Check is how often
	// claims are renewed and expired records looked for.
	ClaimFor, Check time.Duration
	// HoldFor is how long a held run waits for a person before it ends
	// Expired (0: DefaultHoldFor).
	HoldFor time.Duration
	// RunningAfter is how long a run runs before its record says
	// Running (0: DefaultRunningAfter). A run that ends sooner has its
	// record written once, when it ends: in a storm, one write per run
	// fewer on the API server while the storm's pods are being isolated.
	RunningAfter time.Duration
}

// DefaultRunningAfter is Records.RunningAfter's default.
const DefaultRunningAfter = 2 * time.Second

// DefaultHoldFor is how long a held run waits for a decision by default:
// a night and a working day.
const DefaultHoldFor = 24 * time.Hour

// recorder is the server's side of its records.
type recorder struct {
	o   Records
	now func() time.Time

	mu    sync.Mutex
	byRun map[string]string // run id → its record's name
	// runs are the records whose runs started here and have not ended:
	// their incident, and what running waits on before it writes.
	runs map[string]*started

	failures atomic.Int64
	lastErr  atomic.Pointer[string]
	onFail   func()
	// onAdopted is called with a held record this replica adopted from
	// one whose heartbeat lapsed, onExpired with one it ended Expired:
	// the server tells people (their notifications were the other
	// replica's, or are news).
	onAdopted, onExpired func(*record.Response)
}

func newRecorder(o *Records, now func() time.Time) *recorder {
	if o == nil || o.Store == nil {
		return nil
	}
	r := &recorder{o: *o, now: now, byRun: map[string]string{}, runs: map[string]*started{}}
	if r.o.RunningAfter <= 0 {
		r.o.RunningAfter = DefaultRunningAfter
	}
	if r.o.ClaimFor <= 0 {
		r.o.ClaimFor = 30 * time.Second
	}
	if r.o.Check <= 0 {
		r.o.Check = r.o.ClaimFor / 3
	}
	if r.o.HoldFor <= 0 {
		r.o.HoldFor = DefaultHoldFor
	}
	return r
}

// accept records match index of the alert whose body is raw, and returns
// the record's name ("" when it could not be written: the alert is
// accepted locally all the same).
func (r *recorder) accept(ctx context.Context, raw []byte, alert *falco.Alert, index int, m falco.Match, received time.Time) string {
	if r == nil || m.DryRun {
		return ""
	}
	sum := record.Sum(raw)
	name := record.Name(sum, index)
	match, err := json.Marshal(m)
	if err != nil {
		r.failed(err)
		return ""
	}
	rec := &record.Response{Spec: record.Spec{
		AlertSHA256: sum, AlertRule: truncate(alert.Rule, 1024), AlertPriority: truncate(alert.Priority.String(), 64),
		Received: metav1.NewTime(received.UTC()), AcceptedBy: r.o.Identity, Index: index,
		RoutingRule: m.Rule, Playbook: m.Playbook, Key: truncate(m.Key, 1024), Target: target(m.Params), Match: match,
	}}
	if len(raw) <= record.MaxAlertBytes {
		rec.Spec.Alert = raw
	}
	rec.Name = name
	if _, err := r.o.Store.Create(ctx, rec); err != nil {
		r.failed(err)
		return ""
	}
	r.lastErr.Store(nil)
	return name
}

// target is namespace/name from a match's parameters.
func target(params map[string]any) string {
	ns, _ := params["namespace"].(string)
	name, _ := params["name"].(string)
	switch {
	case ns != "" && name != "":
		return ns + "/" + name
	case name != "":
		return name
	}
	node, _ := params["node"].(string)
	return node
}

func (r *recorder) failed(err error) {
	r.failures.Add(1)
	if r.onFail != nil {
		r.onFail()
	}
	msg := err.Error()
	r.lastErr.Store(&msg)
}

// problem is what /readyz says of the records: "" when the last write
// went through.
func (r *recorder) problem() string {
	if r == nil {
		return ""
	}
	if p := r.lastErr.Load(); p != nil && *p != "" {
		return "response records: the last write failed (alerts are accepted in the local spool only): " + *p
	}
	return ""
}

// claim returns this replica's claim, renewed now.
func (r *recorder) claim(old *record.Claim) *record.Claim {
	c := &record.Claim{Holder: r.o.Identity, RenewTime: metav1.NewTime(r.now().UTC()), DurationSeconds: int32(r.o.ClaimFor / time.Second)}
	if c.DurationSeconds < 1 {
		c.DurationSeconds = 1
	}
	if old != nil {
		c.Takeovers = old.Takeovers
	}
	return c
}

// started is a run of a record under way on this replica.
type started struct {
	incident string
	ended    chan struct{}
}

// running records that the run id of incident started on this replica:
// at once, for the run's own lookups (recordOfRun); on the record, off
// the run's path, once it has run for RunningAfter (one that ends sooner
// is recorded by finished alone).
func (r *recorder) running(ctx context.Context, name, run, incident string) {
	if r == nil || name == "" {
		return
	}
	st := &started{incident: incident, ended: make(chan struct{})}
	r.mu.Lock()
	r.byRun[run] = name
	r.runs[name] = st
	r.mu.Unlock()
	go r.markRunning(ctx, name, run, st)
}

// markRunning writes that run of record name is running, unless it ends
// within RunningAfter.
func (r *recorder) markRunning(ctx context.Context, name, run string, st *started) {
	t := time.NewTimer(r.o.RunningAfter)
	defer t.Stop()
	select {
	case <-st.ended:
		return
	case <-ctx.Done():
		return
	case <-t.C:
	}
	incident := st.incident
	r.update(ctx, name, func(rec *record.Response) error {
		if record.Finished(rec.Status.Phase) || rec.Status.Phase == record.Held {
			return record.ErrChanged // it ended, or was held, before this update came
		}
		rec.Status.Phase, rec.Status.Run, rec.Status.Incident, rec.Status.Claim = record.Running, run, incident, r.claim(rec.Status.Claim)
		return nil
	})
}

// recordOfRun returns the name of the record run started from, or "".
func (r *recorder) recordOfRun(run string) string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byRun[run]
}

// decideStep answers the engine for a step that needs approval, from the
// run's record: what a person decided there (kir runs approve --step),
// or pending. A run with no record (records off, or not written) is held:
// nobody could approve it.
func (r *recorder) decideStep(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
	if r == nil {
		return playbooks.Decision{}, errors.New("no response records: nobody can approve a step of kir serve's runs (kir serve --no-records)")
	}
	r.mu.Lock()
	name := r.byRun[run.ID]
	r.mu.Unlock()
	if name == "" {
		return playbooks.Decision{}, fmt.Errorf("run %s has no response record to hold its approval", run.ID)
	}
	rec, err := r.o.Store.Get(ctx, name)
	if err != nil {
		return playbooks.Decision{}, err
	}
	d, ok := rec.Decision(step)
	if !ok {
		return playbooks.Decision{Verdict: playbooks.VerdictPending, Reason: "waiting for kir runs approve " + name + " --step " + step}, nil
	}
	return asDecision(rec, d), nil
}

// finished records how the record's match ended, from the outcome the
// server resolves its task with.
func (r *recorder) finished(ctx context.Context, name, outcome string) {
	if r == nil || name == "" {
		return
	}
	phase, run, msg := phaseOf(outcome)
	if phase == "" {
		return // to be retried: still this replica's
	}
	incident := r.ended(name)
	r.update(ctx, name, func(rec *record.Response) error {
		if phase == record.Duplicate && record.Finished(rec.Status.Phase) {
			return record.ErrChanged // another replica's run of it ended it
		}
		rec.Status.Phase, rec.Status.Message = phase, truncate(msg, 4096)
		if run != "" {
			rec.Status.Run = run
		}
		if rec.Status.Incident == "" {
			rec.Status.Incident = incident
		}
		now := metav1.NewTime(r.now().UTC())
		if record.Finished(phase) {
			rec.Status.Finished = &now
		}
		if phase == record.Held {
			expires := metav1.NewTime(now.Add(r.o.HoldFor))
			rec.Status.HeldSince, rec.Status.ExpiresAt = &now, &expires
		}
		return nil
	})
}

// ended ends the run under way of record name, if any, and returns its
// incident: its running write, not yet made, is not.
func (r *recorder) ended(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.runs[name]
	if st == nil {
		return ""
	}
	delete(r.runs, name)
	close(st.ended)
	return st.incident
}

// phaseOf maps a task's outcome (resolve) to a record's phase, its run
// and a message; "" for a run left to be retried (still this replica's).
func phaseOf(outcome string) (phase, run, msg string) {
	if strings.HasPrefix(outcome, "duplicate") {
		return record.Duplicate, "", outcome
	}
	if why, ok := strings.CutPrefix(outcome, "held:"); ok {
		return record.Held, "", "held until a person approves it: " + why
	}
	parts := strings.SplitN(outcome, ":", 4)
	if parts[0] != "ran" || len(parts) < 3 {
		return record.Failed, "", outcome
	}
	if len(parts) > 3 && parts[3] == "retry" {
		return "", "", ""
	}
	run, msg = parts[1], "run "+parts[1]+" "+parts[2]
	switch parts[2] {
	case playbooks.RunSucceeded:
		return record.Succeeded, run, msg
	case playbooks.RunHeld:
		if len(parts) > 3 {
			msg += ": " + parts[3]
		}
		return record.Held, run, msg
	case playbooks.RunDenied:
		return record.Denied, run, msg
	}
	return record.Failed, run, msg
}

// ranOutcome is the outcome a task is resolved with when its run ended:
// a held run's says where and why it waits.
func ranOutcome(run *playbooks.Run) string {
	return "ran:" + run.ID + ":" + run.Status + heldWhy(run)
}

// heldWhy is ":" and where and why run waits, when it is held.
func heldWhy(run *playbooks.Run) string {
	if run == nil || run.Status != playbooks.RunHeld || run.Held == nil {
		return ""
	}
	return ":at step " + run.Held.Step + ": " + run.Held.Reason
}

func (r *recorder) update(ctx context.Context, name string, change func(*record.Response) error) {
	if _, err := r.o.Store.UpdateStatus(context.WithoutCancel(ctx), name, change); err != nil && !errors.Is(err, record.ErrChanged) {
		r.failed(fmt.Errorf("updating %s: %w", name, err))
	}
}

// effectiveClaim is a record's claim; a record no replica has started
// yet is its accepting replica's since it was received.
func (r *recorder) effectiveClaim(rec *record.Response) *record.Claim {
	if rec.Status.Claim != nil {
		return rec.Status.Claim
	}
	return &record.Claim{Holder: rec.Spec.AcceptedBy, RenewTime: rec.Spec.Received, DurationSeconds: int32(r.o.ClaimFor / time.Second)}
}

// watch renews this replica's claims and takes over the records whose
// claims expired, until ctx ends; take queues a record taken over.
func (r *recorder) watch(ctx context.Context, take func(ctx context.Context, rec *record.Response, approved bool)) {
	if r == nil {
		return
	}
	t := time.NewTicker(r.o.Check)
	defer t.Stop()
	for {
		r.beat(ctx)
		r.takeOver(ctx, take)
		r.decide(ctx, take)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeatName is the Lease by which replica says it is alive.
func heartbeatName(replica string) string { return "kir-serve-" + identitySuffix(replica) }

// beat renews this replica's heartbeat Lease: one write per period,
// however many records it holds.
func (r *recorder) beat(ctx context.Context) {
	if r.o.Kube == nil {
		return
	}
	leases := r.o.Kube.CoordinationV1().Leases(r.o.Store.Namespace())
	name := heartbeatName(r.o.Identity)
	now := metav1.NewMicroTime(r.now())
	secs := int32(max(1, r.o.ClaimFor/time.Second))
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &r.o.Identity, RenewTime: &now, LeaseDurationSeconds: &secs}}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
	case err == nil:
		l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &r.o.Identity, &now, &secs
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil && ctx.Err() == nil {
		r.failed(fmt.Errorf("renewing this replica's heartbeat (Lease %s): %w", name, err))
	}
}

// alive reports whether replica renewed its heartbeat within its duration
// (without a client to read it: as its records' claims say).
func (r *recorder) alive(ctx context.Context, replica string, now time.Time) bool {
	if r.o.Kube == nil {
		return false
	}
	l, err := r.o.Kube.CoordinationV1().Leases(r.o.Store.Namespace()).Get(ctx, heartbeatName(replica), metav1.GetOptions{})
	if err != nil || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return err != nil && !apierrors.IsNotFound(err) // unreadable: assume alive, take nothing
	}
	return now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// takeOver claims the unfinished records of other replicas whose claims
// expired, and hands each it won to take.
func (r *recorder) takeOver(ctx context.Context, take func(context.Context, *record.Response, bool)) {
	list, err := r.o.Store.List(ctx, "")
	if err != nil {
		r.failed(err)
		return
	}
	now := r.now()
	alive := map[string]bool{}
	for i := range list {
		rec := &list[i]
		c := r.effectiveClaim(rec)
		if record.Finished(rec.Status.Phase) || c.Holder == r.o.Identity || !c.Expired(now) {
			continue
		}
		a, known := alive[c.Holder]
		if !known {
			a = r.alive(ctx, c.Holder, now)
			alive[c.Holder] = a
		}
		if a {
			continue // its holder is alive, however long its run takes
		}
		if rec.Status.Phase == record.Held {
			r.adopt(ctx, rec)
			continue
		}
		won, err := r.o.Store.UpdateStatus(ctx, rec.Name, func(cur *record.Response) error {
			cc := r.effectiveClaim(cur)
			if record.Finished(cur.Status.Phase) || cc.Holder == r.o.Identity || !cc.Expired(r.now()) {
				return record.ErrChanged
			}
			cur.Status.Claim = r.claim(cc)
			cur.Status.Claim.Takeovers++
			if cur.Status.Phase == "" {
				cur.Status.Phase = record.Accepted
			}
			cur.Status.Message = "taken over from " + cc.Holder + ", whose claim expired"
			return nil
		})
		if err != nil {
			if !errors.Is(err, record.ErrChanged) {
				r.failed(err)
			}
			continue
		}
		take(ctx, won, false)
	}
}

// adopt makes a held record whose replica's heartbeat lapsed this
// replica's (compare-and-swap on its claim): a held record needs no run,
// but its held notification was in the lost replica's outbox, and a lost
// "held" message means nobody approves.
func (r *recorder) adopt(ctx context.Context, rec *record.Response) {
	won, err := r.o.Store.UpdateStatus(ctx, rec.Name, func(cur *record.Response) error {
		cc := r.effectiveClaim(cur)
		if cur.Status.Phase != record.Held || cc.Holder == r.o.Identity || !cc.Expired(r.now()) {
			return record.ErrChanged
		}
		cur.Status.Claim = r.claim(cc)
		cur.Status.Claim.Takeovers++
		return nil
	})
	switch {
	case errors.Is(err, record.ErrChanged):
	case err != nil:
		r.failed(err)
	case r.onAdopted != nil:
		r.onAdopted(won)
	}
}

// decide acts on the decisions people wrote on held records (kir runs
// approve / deny): one replica wins each (compare-and-swap on the
// record's status), and runs an approved record regardless of the budget,
// or ends a denied one. Decisions on a step of a run (Step set) are for
// the run's own approval gate.
func (r *recorder) decide(ctx context.Context, take func(context.Context, *record.Response, bool)) {
	list, err := r.o.Store.List(ctx, "")
	if err != nil {
		r.failed(err)
		return
	}
	for i := range list {
		rec := &list[i]
		if rec.Status.Phase == record.Held && len(rec.Spec.Approvals) <= rec.Status.Decided {
			r.expire(ctx, rec)
			continue
		}
		if rec.Status.Phase != record.Held {
			continue
		}
		var approved bool
		won, err := r.o.Store.UpdateStatus(ctx, rec.Name, func(cur *record.Response) error {
			if cur.Status.Phase != record.Held || len(cur.Spec.Approvals) <= cur.Status.Decided {
				return record.ErrChanged
			}
			cur.Status.Decided = len(cur.Spec.Approvals)
			d, ok := cur.Decision("")
			switch {
			case !ok: // a decision on a step: the run goes again, and its gate reads it
				last := cur.Spec.Approvals[len(cur.Spec.Approvals)-1]
				approved = true
				cur.Status.Phase, cur.Status.Claim = record.Accepted, r.claim(cur.Status.Claim)
				cur.Status.Message = truncate(last.Decision+" of step "+last.Step+" by "+last.By+": "+last.Reason, 4096)
			case d.Decision == record.Deny:
				now := metav1.NewTime(r.now().UTC())
				cur.Status.Phase, cur.Status.Finished = record.Denied, &now
				cur.Status.Message = truncate("denied by "+d.By+": "+d.Reason, 4096)
			default:
				approved = true
				cur.Status.Phase, cur.Status.Claim = record.Accepted, r.claim(cur.Status.Claim)
				cur.Status.Message = truncate("approved by "+d.By+": "+d.Reason, 4096)
			}
			return nil
		})
		if err != nil {
			if !errors.Is(err, record.ErrChanged) {
				r.failed(err)
			}
			continue
		}
		if approved {
			take(ctx, won, true)
		}
	}
}

// takeOver queues a record taken over from a replica whose claim expired,
// or approved by a person: its alert goes into this replica's spool, as if
// received here, and its match runs under the record's name.
func (s *server) takeOver(ctx context.Context, rec *record.Response, approved bool) {
	log := s.o.Log.With("record", rec.Name, "from", rec.Spec.AcceptedBy)
	if approved && s.resumeHeld(ctx, rec, log) {
		return
	}
	var m falco.Match
	err := json.Unmarshal(rec.Spec.Match, &m)
	var alert *falco.Alert
	if err == nil {
		if len(rec.Spec.Alert) == 0 {
			err = errors.New("the record holds the alert's hash only (it was over the size bound)")
		} else {
			alert, err = falco.Decode(rec.Spec.Alert)
		}
	}
	if err != nil {
		log.Error("a record taken over cannot be run", "err", err)
		s.rec.finished(context.Background(), rec.Name, "error:cannot take over: "+err.Error())
		return
	}
	raw, err := spooled{Received: rec.Spec.Received.Time, Alert: rec.Spec.Alert, Matches: []falco.Match{m}}.encode()
	if err == nil {
		var it spool.Item
		it, err = s.spool.Add(context.Background(), raw)
		if err == nil {
			if approved {
				log.Info("running a held alert a person approved", "alert", it.ID, "rule", alert.Rule)
			} else {
				s.o.Metrics.Takeovers.Inc()
				log.Warn("took over an alert accepted by another replica, whose claim expired", "alert", it.ID, "rule", alert.Rule)
			}
			s.queued.Add(1)
			s.enqueue(&item{id: it.ID, received: rec.Spec.Received.Time, records: []string{rec.Name}, approved: approved}, alert, []falco.Match{m}, true, func() *slog.Logger { return log })
			return
		}
	}
	log.Error("spooling an alert taken over; its claim is given up for another replica to take", "err", err)
	s.rec.update(context.Background(), rec.Name, func(cur *record.Response) error {
		if cur.Status.Claim == nil || cur.Status.Claim.Holder != s.rec.o.Identity {
			return record.ErrChanged
		}
		cur.Status.Claim.Holder, cur.Status.Claim.RenewTime = "", metav1.NewTime(time.Time{}.Add(time.Second))
		return nil
	})
}

// resumeHeld resumes the held run of an approved record when its journal
// is this replica's: from the step it was held at, which asks the record
// again. It reports whether it did; a run journaled elsewhere (a replica
// gone) is run again from the record instead.
func (s *server) resumeHeld(ctx context.Context, rec *record.Response, log *slog.Logger) bool {
	id := rec.Status.Run
	if id == "" {
		return false
	}
	run, err := s.o.Engine.Load(id)
	if err != nil || run.Status != playbooks.RunHeld {
		return false
	}
	s.recordDecision(rec, run, log)
	s.active.Add(1)
	go func() {
		defer s.active.Done()
		env := s.o.Env
		env.Incident, env.Log = run.Incident, log.With("run", id)
		s.rec.running(ctx, rec.Name, id, run.Incident)
		log.Info("resuming a held run a person decided on", "run", id)
		resumed, err := s.resume(ctx, id, env)
		outcome := "error:" + fmt.Sprint(err)
		if err == nil {
			outcome = ranOutcome(resumed)
			s.o.Metrics.Runs.WithLabelValues(resumed.Playbook, resumed.Status).Inc()
		}
		s.rec.finished(ctx, rec.Name, outcome)
	}()
	return true
}

// expire ends a held record nobody answered by its ExpiresAt: Expired,
// and said so (the run stays as it was held: what ran stands).
func (r *recorder) expire(ctx context.Context, rec *record.Response) {
	now := r.now()
	if rec.Status.ExpiresAt == nil || now.Before(rec.Status.ExpiresAt.Time) {
		return
	}
	won, err := r.o.Store.UpdateStatus(ctx, rec.Name, func(cur *record.Response) error {
		if cur.Status.Phase != record.Held || len(cur.Spec.Approvals) > cur.Status.Decided ||
			cur.Status.ExpiresAt == nil || now.Before(cur.Status.ExpiresAt.Time) {
			return record.ErrChanged
		}
		at := metav1.NewTime(now.UTC())
		cur.Status.Phase, cur.Status.Finished = record.Expired, &at
		cur.Status.Message = truncate(fmt.Sprintf("expired: held since %s, nobody approved or denied it within %s (%s)",
			cur.Status.HeldSince.UTC().Format(time.RFC3339), r.o.HoldFor, cur.Status.Message), 4096)
		return nil
	})
	switch {
	case errors.Is(err, record.ErrChanged):
	case err != nil:
		r.failed(err)
	case r.onExpired != nil:
		r.onExpired(won)
	}
}

// decisionDetail is the custody detail of a person's decision on a held
// run, as its record holds it.
type decisionDetail struct {
	Record   string    `json:"record"`
	Run      string    `json:"run"`
	Step     string    `json:"step,omitempty"`
	Decision string    `json:"decision"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason,omitempty"`
	// Verified: the admission policy kir-response-approvals admits a
	// decision only in the name of the user the API server authenticated
	// for the request that wrote it.
	Verified string `json:"verified"`
}

// recordDecision appends the latest decision on rec to its run's sealed
// evidence as a custody entry, signed with serve's key when it has one:
// the auditor reads who let the run go on, and when.
func (s *server) recordDecision(rec *record.Response, run *playbooks.Run, log *slog.Logger) {
	if len(rec.Spec.Approvals) > 0 {
		s.recordDecisions(rec, run, rec.Spec.Approvals[len(rec.Spec.Approvals)-1:], log)
	}
}

// recordRerunDecisions records, in the evidence of a run that ran a
// record again from the start (its held run's journal was another
// replica's), every decision the record holds: the run went on because
// of them.
func (s *server) recordRerunDecisions(t *task, outcome string) {
	parts := strings.SplitN(outcome, ":", 4)
	name := s.recordOf(t)
	if !t.item.approved || parts[0] != "ran" || len(parts) < 3 || name == "" || s.rec == nil {
		return
	}
	log := s.o.Log.With("record", name, "run", parts[1])
	rec, err := s.rec.o.Store.Get(context.Background(), name)
	if err != nil {
		log.Error("reading the record to put its decisions in the run's evidence", "err", err)
		return
	}
	run, err := s.o.Engine.Load(parts[1])
	if err != nil {
		log.Error("reading the run to put its record's decisions in its evidence", "err", err)
		return
	}
	s.recordDecisions(rec, run, rec.Spec.Approvals, log)
}

// recordDecisions appends decisions, made on rec, to run's sealed
// evidence, one custody entry each.
func (s *server) recordDecisions(rec *record.Response, run *playbooks.Run, decisions []record.Approval, log *slog.Logger) {
	if len(decisions) == 0 || s.o.Engine.Evidence == "" {
		return
	}
	bundle := filepath.Join(s.o.Engine.Evidence, run.ID)
	if _, err := os.Stat(filepath.Join(bundle, evidence.ManifestFile)); err != nil {
		return // the run sealed no bundle of its own
	}
	var signer evidence.Signer
	if s.o.Key != "" {
		var err error
		if signer, err = evidence.LoadSigner(s.o.Key); err != nil {
			log.Error("loading the evidence key to record a decision", "err", err)
			return
		}
	}
	for _, d := range decisions {
		e := evidence.Entry{Action: d.Decision, Actor: d.By, Version: s.o.Env.Version, Detail: decisionDetail{
			Record: rec.Name, Run: run.ID, Step: d.Step, Decision: d.Decision, By: d.By, At: d.At.UTC(), Reason: d.Reason,
			Verified: "admission policy kir-response-approvals (the writer's authenticated name)",
		}}
		if err := evidence.AppendCustody(bundle, e, signer); err != nil {
			log.Error("recording a decision in the run's evidence", "bundle", bundle, "err", err)
			return
		}
	}
}
