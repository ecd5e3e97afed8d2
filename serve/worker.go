package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/falco"
	"kir.dev/kir/guard"
	"kir.dev/kir/playbooks"
)

// start resumes the alerts the spool kept from before a restart, starts
// the workers and the sweeper of expired claims, and returns. The server
// is ready (/readyz) once every kept alert is queued again. Workers stop
// taking alerts when ctx ends; wait waits for them.
func (s *server) start(ctx context.Context) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.dispatch(ctx)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.resumePending()
		s.ready.Store(true)
		if s.o.Claims != nil {
			s.sweep(ctx)
		}
	}()
	if s.rec != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.rec.watch(ctx, s.takeOver)
		}()
	}
	if s.outbox != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.outbox.Run(ctx)
		}()
	}
	s.startTamper(ctx)
}

// dispatch hands each task to a worker: at most Workers tasks are being
// handled at once, except that a run waiting to collect evidence gives its
// worker back (see collectGate), so that the next alert's isolation never
// waits for the last one's evidence.
func (s *server) dispatch(ctx context.Context) {
	for {
		var t *task
		select {
		case <-ctx.Done():
			return
		case <-s.draining:
			return
		case t = <-s.tasks:
		}
		s.queued.Add(-1)
		s.o.Metrics.Queue.Dec()
		select {
		case s.workers <- struct{}{}:
		case <-ctx.Done():
			return
		}
		var once sync.Once
		release := func() { once.Do(func() { <-s.workers }) }
		s.active.Add(1)
		go func() {
			defer s.active.Done()
			defer release()
			s.handle(context.WithValue(ctx, workerKey{}, release), t)
		}()
	}
}

// workerKey holds, in a task's context, the function that gives its
// worker back.
type workerKey struct{}

// releaseWorker gives the worker of the task running with ctx back, once.
func releaseWorker(ctx context.Context) {
	if release, ok := ctx.Value(workerKey{}).(func()); ok {
		release()
	}
}

// drain stops the workers from taking alerts and waits, until ctx ends,
// for the runs in progress. What is left stays in the spool.
func (s *server) drain(ctx context.Context) {
	s.drainMu.Do(func() { close(s.draining) })
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// wait waits for the workers once start's context has ended. Alerts still
// queued or running stay in the spool and the journal: the next start
// resumes them. It also waits for the runs in progress, whose context has
// ended with the workers': none may write its journal or bundle after
// wait returns (serve.Run returns after it).
func (s *server) wait() {
	s.wg.Wait()
	s.active.Wait()
}

// resumePending queues again what the spool kept.
func (s *server) resumePending() {
	for _, p := range s.pending {
		var rec spooled
		if err := json.Unmarshal(p.Data, &rec); err != nil {
			s.o.Log.Error("a kept alert cannot be read; it is left in the spool", "alert", p.ID, "err", err)
			continue
		}
		alert, err := falco.Decode(rec.Alert)
		if err != nil {
			s.o.Log.Error("a kept alert cannot be decoded; it is left in the spool", "alert", p.ID, "err", err)
			continue
		}
		s.queued.Add(int64(len(rec.Matches)))
		log := s.o.Log.With("alert", p.ID, "uuid", alert.UUID, "rule", alert.Rule)
		log.Info("resuming an alert accepted before the restart")
		s.enqueue(&item{id: p.ID, received: rec.Received, raw: rec.Alert}, alert, rec.Matches, false, func() *slog.Logger { return log })
	}
	s.pending = nil
}

func (s *server) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.o.Claims.Sweep(ctx, s.o.Claims.Duration); err != nil {
				s.o.Log.Warn("sweeping expired claims", "err", err)
			} else if n > 0 {
				s.o.Log.Info("swept expired claims", "count", n)
			}
		}
	}
}

// runID names the run of match index of spool item id: the same after a
// restart, so that a replayed alert finds its run in the journal.
func runID(id uint64, index int) string { return fmt.Sprintf("alert-%d-%d", id, index) }

// runID names t's run. With claims across replicas it ends with this
// replica's identity: replicas that share a state directory (a shared
// volume, which lets one resume the other's failed run) would otherwise
// both name their first alert's run alert-1-0.
func (s *server) runID(t *task) string {
	id := runID(t.item.id, t.index)
	if s.o.Claims == nil || s.o.Claims.Identity == "" {
		return id
	}
	return id + "." + identitySuffix(s.o.Claims.Identity)
}

// identitySuffix is identity as a journal id allows ([a-z0-9._-]), short.
func identitySuffix(identity string) string {
	b := []byte(strings.ToLower(identity))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return truncate(string(b), 63)
}

// handle works on one match: a run that already exists (a replay) is
// finished or resumed; otherwise the key is claimed, here and across
// replicas, and the playbook run; alerts for a key being handled wait
// for that run and then count as its duplicates.
func (s *server) handle(ctx context.Context, t *task) {
	m := t.match
	id := s.runID(t)
	log := s.o.Log.With("alert", t.item.id, "uuid", t.uuid, "run", id, "playbook", m.Playbook, "key", m.Key)
	if m.DryRun {
		s.dryRun(ctx, t, log)
		return
	}
	run, err := s.o.Engine.Load(id)
	if legacy := runID(t.item.id, t.index); errors.Is(err, playbooks.ErrRunNotFound) && legacy != id {
		// Journaled before run ids carried the replica's identity.
		if r, lerr := s.o.Engine.Load(legacy); lerr == nil {
			run, err, id = r, nil, legacy
		}
	}
	switch {
	case err == nil && run.Status != playbooks.RunInterrupted:
		log.Info("the alert's run finished before the restart", "status", run.Status)
		s.finishKey(m.Key, "duplicate of "+id, m.Window)
		s.resolve(t, "ran:"+id+":"+run.Status)
		return
	case err != nil && !errors.Is(err, playbooks.ErrRunNotFound):
		log.Error("reading the alert's run", "err", err)
	}
	if !t.entered {
		if run, duplicate := s.keys.enter(m.Key, t, s.o.Now()); !run {
			if duplicate {
				s.o.Metrics.Deduplicated.Inc()
				s.resolve(t, "duplicate")
			}
			return // waits for the key's run
		}
	}
	if run == nil && t.resume == "" {
		var held bool
		if ctx, held = s.overBudget(ctx, t, log); held {
			return
		}
	}
	s.claimAndRun(ctx, t, run, log)
}

// claimAndRun claims t's key across replicas and runs (or resumes) its
// playbook. A new run, on its first attempt, claims beside its first,
// read-only step: the claim is waited for before the run's second step or
// its first that acts (Request.Hold), so the Lease's round trip overlaps
// the pod's snapshot; a run that loses the claim has changed nothing and
// is discarded. A retry, a resumed run, and a run whose evidence goes to a
// bundle of its own (which discarding would not remove) claim first.
func (s *server) claimAndRun(ctx context.Context, t *task, existing *playbooks.Run, log *slog.Logger) {
	m := t.match
	id := s.runID(t)
	entry, ok := s.o.Library.Get(m.Playbook)
	if !ok {
		log.Error("the routed playbook does not exist")
		s.finishKey(m.Key, "no playbook", 0)
		s.resolve(t, "error:no playbook "+m.Playbook)
		return
	}
	var claim *pendingClaim
	if s.o.Claims != nil {
		claim = s.claim(ctx, m.Key, m.Window, id, log)
	}
	overlap := claim != nil && existing == nil && !t.retry && t.resume == "" && s.defaultBundle(entry.Playbook, m.Params)
	s.run(ctx, t, entry.Playbook, existing, claim, overlap, log)
}

// defaultBundle reports whether a run of pb with params keeps its evidence
// in its own bundle, run.evidence, which discarding the run removes: its
// bundle parameter, if it has one, is empty once bound.
func (s *server) defaultBundle(pb *playbooks.Playbook, params map[string]any) bool {
	bound, err := playbooks.Bind(pb, WithKey(pb, params, s.o.Key))
	if err != nil {
		return false // the run will not start; claim first all the same
	}
	bundle, _ := bound["bundle"].(string)
	return bundle == ""
}

// pendingClaim is a claim on its way to the API server. Once won, it is
// renewed until stop.
type pendingClaim struct {
	done  chan struct{}
	claim Claim
	err   error
	stop  func() *coordinationv1.Lease // set once won
}

func (s *server) claim(ctx context.Context, key string, window time.Duration, run string, log *slog.Logger) *pendingClaim {
	p := &pendingClaim{done: make(chan struct{}), stop: func() *coordinationv1.Lease { return nil }}
	go func() {
		defer close(p.done)
		p.claim, p.err = s.o.Claims.Claim(ctx, key, window, run)
		if p.err == nil && p.claim.State == Won {
			p.stop = s.renew(ctx, &p.claim, log)
		}
	}()
	return p
}

// wait waits for the claim's outcome: nil if it was won.
func (p *pendingClaim) wait(ctx context.Context) *notWon {
	select {
	case <-p.done: // answered: what it says, even if ctx has ended too
	default:
		select {
		case <-p.done:
		case <-ctx.Done():
			return &notWon{err: ctx.Err()}
		}
	}
	return p.outcome()
}

// outcome is the answered claim's: nil if it was won.
func (p *pendingClaim) outcome() *notWon {
	if p.err != nil || p.claim.State != Won {
		return &notWon{claim: p.claim, err: p.err}
	}
	return nil
}

// finish stops renewing a won claim and returns its latest Lease; nil if
// it was not won. It waits for the claim's answer.
func (p *pendingClaim) finish() *coordinationv1.Lease {
	<-p.done
	return p.stop()
}

// notWon is a claim this replica did not win, or could not make.
type notWon struct {
	claim Claim
	err   error
}

func (e *notWon) Error() string {
	if e.err != nil {
		return "claiming the key: " + e.err.Error()
	}
	return fmt.Sprintf("the key is %s's (run %s)", e.claim.Holder, e.claim.Run)
}

// lost deals with a task whose claim another replica holds or has
// finished, or that could not be made. leftover names a run of t's left
// on disk (from before a restart, or not discarded whole), if any: it
// never acted, and is discarded once another replica has run the key.
func (s *server) lost(ctx context.Context, t *task, nw *notWon, leftover string, log *slog.Logger) {
	m := t.match
	switch claim := nw.claim; {
	case ctx.Err() != nil:
		return // shutting down: the spool keeps it
	case nw.err != nil:
		log.Error("claiming the key; retrying", "err", nw.err)
		s.retry(ctx, t, time.Second)
	case claim.State == Backoff:
		log.Info("duplicate: the key's run failed for a transient reason and waits to be retried", "retried", claim.Run, "attempts", claim.Attempts, "retryAt", claim.RetryAt)
		if leftover != "" {
			if err := s.o.Engine.Discard(leftover); err != nil {
				log.Warn("a run of this alert's that never acted is kept", "err", err)
			}
		}
		s.o.Metrics.Deduplicated.Inc()
		s.finishKey(m.Key, "duplicate of "+claim.Run, claim.RetryAt.Sub(s.o.Now()))
		s.resolve(t, "duplicate of "+claim.Run)
	case claim.State == Finished:
		log.Info("duplicate: another replica ran this key", "holder", claim.Holder, "holderRun", claim.Run)
		if leftover != "" {
			if err := s.o.Engine.Discard(leftover); err != nil {
				log.Warn("a run of this alert's that never acted is kept", "err", err)
			}
		}
		s.o.Metrics.Deduplicated.Inc()
		s.finishKey(m.Key, "duplicate of "+claim.Run, m.Window)
		s.resolve(t, "duplicate of "+claim.Run)
	default: // Held
		// Another replica runs it. Should it die, its claim lapses and
		// this one takes over: ask again then.
		wait := max(time.Until(claim.Expires), 0) + 200*time.Millisecond
		log.Info("another replica is running this key; waiting for it", "holder", claim.Holder, "recheck", wait.String())
		s.retry(ctx, t, wait)
	}
}

// retry tries a task's key again after d, keeping its place as the key's
// first task. It goes through the queue and a worker, as every run does:
// the worker bound holds, and drain waits for it.
func (s *server) retry(ctx context.Context, t *task, d time.Duration) {
	time.AfterFunc(d, func() {
		if ctx.Err() != nil {
			return
		}
		t.entered, t.retry = true, true
		s.queued.Add(1)
		s.o.Metrics.Queue.Inc()
		select {
		case s.tasks <- t:
		case <-ctx.Done(): // the spool keeps it
			s.queued.Add(-1)
			s.o.Metrics.Queue.Dec()
		}
	})
}

// run runs t's playbook, or resumes a run of its key's: existing, t's
// own from before a restart, or the one that failed for a transient
// reason and that the key's claim (or, without claims, the key table)
// names for a retry. With a claim, only once it is won: before the run
// starts, unless overlap lets the run's first step go on beside the
// claim (a claim that turns out to name a run to resume then discards
// the new run, which changed nothing).
func (s *server) run(ctx context.Context, t *task, pb *playbooks.Playbook, existing *playbooks.Run, claim *pendingClaim, overlap bool, log *slog.Logger) {
	m := t.match
	id := s.runID(t)
	resume, attempts := "", t.attempts
	if existing != nil {
		resume = existing.ID
	} else if claim == nil {
		resume = s.retryRun(t.resume, log)
	}
	var hold func(context.Context) error
	if claim != nil {
		if !overlap {
			if nw := claim.wait(ctx); nw != nil {
				s.lost(ctx, t, nw, resume, log)
				return
			}
			if r := s.retryRun(claim.claim.Resume, log); r != "" && existing == nil {
				resume = r
			}
		} else {
			hold = func(hctx context.Context) error {
				if nw := claim.wait(hctx); nw != nil {
					return nw
				}
				if r := s.retryRun(claim.claim.Resume, log); r != "" {
					return &resumeInstead{run: r}
				}
				return nil
			}
		}
	}
	env := s.o.Env
	env.Incident = newIncident(s.o.Now(), t.item.id)
	env.Log = log
	s.rec.running(ctx, s.recordOf(t), id, env.Incident) // its write is off the run's path
	s.o.Metrics.StartLatency.WithLabelValues(m.Playbook).Observe(s.o.Now().Sub(t.item.received).Seconds())
	var run *playbooks.Run
	var err error
	if resume != "" {
		log.Info("resuming the key's run", "resumed", resume)
		run, err = s.resume(ctx, resume, env)
	} else {
		log.Info("running playbook", "incident", env.Incident)
		run, err = s.o.Engine.Start(ctx, playbooks.Request{
			Playbook: pb, Params: WithKey(pb, m.Params, s.o.Key), Alert: t.alert.Vars(), Env: env, ID: id, Hold: hold,
		})
	}
	if held := (*playbooks.HeldError)(nil); errors.As(err, &held) {
		if ri, ok := held.Err.(*resumeInstead); ok {
			if err != error(held) {
				log.Warn("the run set aside for a retry could not be discarded whole", "err", err)
			}
			resume = ri.run
			log.Info("resuming the key's run that failed for a transient reason", "resumed", resume)
			run, err = s.resume(ctx, resume, env)
		} else {
			s.heldBack(ctx, t, held, err, id, log)
			return
		}
	}
	if resume != "" {
		id = resume
	}
	var lease *coordinationv1.Lease
	if claim != nil {
		// Answered by now, or soon: its request ends with ctx. A run
		// that stopped before it asked (it could not start) still learns
		// whose the key is.
		lease = claim.finish()
		if nw := claim.outcome(); nw != nil {
			s.lost(ctx, t, nw, "", log)
			return
		}
		// The claim counts the key's attempts, on every replica; a
		// run of this replica's own under a retried claim (the run to
		// resume out of reach) counts among them.
		attempts = claim.claim.Attempts
	}
	if ctx.Err() != nil && (err != nil || run.Status == playbooks.RunInterrupted) {
		log.Info("stopped with the server; the next start resumes it")
		return
	}
	s.settle(ctx, t, id, run, err, lease, attempts, log)
}

// resumeInstead is what Hold returns when the claim it waited for names
// a run to resume: the new run, which changed nothing, is discarded.
type resumeInstead struct{ run string }

func (r *resumeInstead) Error() string { return "the key's run " + r.run + " is to be resumed" }

// retryRun is run, a run to retry, if this replica can resume it: its
// journal is here (a state directory shared with the replica that ran
// it) and it has not succeeded. Otherwise "": a run of this replica's own
// takes its place, under the same claim and attempt count.
func (s *server) retryRun(run string, log *slog.Logger) string {
	if run == "" {
		return ""
	}
	r, err := s.o.Engine.Load(run)
	switch {
	case errors.Is(err, playbooks.ErrRunNotFound):
		log.Info("the run to retry is not in this replica's state (another replica's): starting a run of its own under the key's claim", "retried", run)
		return ""
	case err != nil:
		log.Warn("the run to retry cannot be read: starting a run of its own under the key's claim", "retried", run, "err", err)
		return ""
	case r.Status == "running":
		log.Warn("the run to retry is being run by another process: starting a run of its own under the key's claim", "retried", run)
		return ""
	}
	return run
}

// resume resumes run id; one that had succeeded meanwhile is reported as
// it is.
func (s *server) resume(ctx context.Context, id string, env action.Env) (*playbooks.Run, error) {
	run, err := s.o.Engine.Resume(ctx, id, env)
	if errors.Is(err, playbooks.ErrFinished) && run != nil {
		return run, nil
	}
	return run, err
}

// heldBack deals with a new run that Hold stopped because the claim was
// not won: it changed nothing and was discarded.
func (s *server) heldBack(ctx context.Context, t *task, held *playbooks.HeldError, err error, id string, log *slog.Logger) {
	nw, ok := held.Err.(*notWon)
	if !ok { // Hold returns only *notWon or *resumeInstead; never panic a worker over it
		nw = &notWon{err: held.Err}
	}
	leftover := ""
	if err != error(held) { // joined with what discarding it met
		log.Warn("the run that lost its claim could not be discarded whole", "err", err)
		leftover = id
	} else {
		log.Info("the run changed nothing and was discarded: its key is not this replica's to run", "reason", nw.Error())
	}
	s.lost(ctx, t, nw, leftover, log)
}

// settle ends the key's run id. One that succeeded, or failed for a reason
// a retry cannot fix (see transient), or used its last attempt, finishes
// the key: its window of duplicates starts and its claim is marked
// finished. One that failed for a transient reason leaves the key to be
// retried after a backoff, by resuming run id.
func (s *server) settle(ctx context.Context, t *task, id string, run *playbooks.Run, err error, lease *coordinationv1.Lease, attempts int, log *slog.Logger) {
	if errors.As(err, new(*guard.RefusedError)) {
		// Nothing ran, nothing changed: no window, and the claim lapses.
		log.Warn("run refused", "err", err)
		s.o.Metrics.Runs.WithLabelValues(t.match.Playbook, "refused").Inc()
		s.finishKey(t.match.Key, "refused", 0)
		s.resolve(t, "refused:"+id)
		return
	}
	status, cause := "error", err
	if err != nil {
		log.Error("the playbook could not run", "err", err)
	} else {
		status = run.Status
		if status == playbooks.RunFailed || status == playbooks.RunPartial || status == playbooks.RunNotEnforced {
			cause = run.Err()
		}
		log.Info("playbook run finished", "status", run.Status, "error", run.Error)
	}
	s.o.Metrics.RunLatency.WithLabelValues(t.match.Playbook).Observe(s.o.Now().Sub(t.item.received).Seconds())
	e := ending{run: id, status: status, cause: cause, resumable: err == nil || resumable(run), attempts: attempts}
	if err == nil {
		e.why = heldWhy(run)
	}
	s.end(ctx, t, e, lease, log)
}

// ending is how a key's run ended: its status, and what made it fail.
type ending struct {
	run, status string
	// why is where and why a held run waits (heldWhy).
	why   string
	cause error
	// resumable: the run left a journal to resume.
	resumable bool
	// attempts counts the key's earlier transient failures.
	attempts int
}

// end ends the key's run e.run: finished, or left to be retried.
func (s *server) end(ctx context.Context, t *task, e ending, lease *coordinationv1.Lease, log *slog.Logger) {
	m := t.match
	retry := transient(e.cause) && e.resumable
	if retry && e.attempts+1 < s.o.RetryAttempts {
		attempts := e.attempts + 1
		wait := backoff(s.o.RetryBackoff, attempts)
		retryAt := s.o.Now().Add(wait)
		log.Warn("the run failed for a transient reason: the key's next alert resumes it", "attempts", attempts, "retryAt", retryAt, "err", e.cause)
		s.o.Metrics.Runs.WithLabelValues(m.Playbook, "retried").Inc()
		if lease != nil {
			if _, err := s.o.Claims.Release(context.WithoutCancel(ctx), lease, e.run, e.status, attempts, retryAt); err != nil {
				log.Warn("releasing the claim for a retry", "err", err)
			}
		}
		for _, w := range s.keys.retry(m.Key, s.o.Now(), wait, e.run, attempts) {
			s.o.Metrics.Deduplicated.Inc()
			s.resolve(w, "duplicate of "+e.run)
		}
		s.resolve(t, "ran:"+e.run+":"+e.status+":retry")
		return
	}
	if retry {
		log.Error("the run failed for a transient reason, and its attempts are spent", "attempts", e.attempts+1)
	}
	s.o.Metrics.Runs.WithLabelValues(m.Playbook, e.status).Inc()
	if lease != nil {
		if _, err := s.o.Claims.Finish(context.WithoutCancel(ctx), lease, e.run, e.status); err != nil {
			log.Warn("recording the run on its claim", "err", err)
		}
	}
	s.finishKey(m.Key, "duplicate of "+e.run, m.Window)
	s.resolve(t, "ran:"+e.run+":"+e.status+e.why)
}

// resumable says whether run, which returned an error, left a journal to
// resume.
func resumable(run *playbooks.Run) bool { return run != nil && run.Journaled }

// renew keeps a won claim alive while its run goes on; the returned
// function stops it and gives the claim's latest Lease.
func (s *server) renew(ctx context.Context, claim *Claim, log *slog.Logger) func() *coordinationv1.Lease {
	if claim.Lease == nil {
		return func() *coordinationv1.Lease { return nil }
	}
	var mu sync.Mutex
	lease := claim.Lease
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(s.o.Claims.Duration / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				mu.Lock()
				l, err := s.o.Claims.Renew(ctx, lease)
				if err == nil {
					lease = l
				} else if ctx.Err() == nil {
					log.Warn("renewing the claim", "err", err)
				}
				mu.Unlock()
			}
		}
	}()
	return func() *coordinationv1.Lease {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return lease
	}
}

// finishKey ends a key's run here: the alerts that waited for it are its
// duplicates, and so are the key's alerts until window ends.
func (s *server) finishKey(key, outcome string, window time.Duration) {
	for _, w := range s.keys.finish(key, s.o.Now(), window) {
		s.o.Metrics.Deduplicated.Inc()
		s.resolve(w, outcome)
	}
}

// dryRun plans a match's run without acting, and logs it.
func (s *server) dryRun(ctx context.Context, t *task, log *slog.Logger) {
	entry, ok := s.o.Library.Get(t.match.Playbook)
	if !ok {
		s.resolve(t, "error:no playbook "+t.match.Playbook)
		return
	}
	env := s.o.Env
	env.DryRun = action.DryRunClient
	env.Incident = newIncident(s.o.Now(), t.item.id)
	run, err := s.o.Engine.Start(ctx, playbooks.Request{Playbook: entry.Playbook, Params: t.match.Params, Alert: t.alert.Vars(), Env: env})
	if err != nil {
		log.Info("dry run: the playbook would not start", "err", err)
		s.resolve(t, "dry-run:error")
		return
	}
	for _, st := range run.Steps {
		log.Info("dry run: would run step", "step", st.Name, "action", st.Action, "status", st.Status, "params", st.Params)
	}
	s.resolve(t, "dry-run:"+run.Status)
}

// newIncident names the incident an alert opens.
func newIncident(now time.Time, id uint64) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return fmt.Sprintf("inc-%s-a%d-%s", now.UTC().Format("20060102-150405"), id, hex.EncodeToString(b))
}
