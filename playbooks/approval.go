package playbooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Approvals decides whether a step that needs approval (approval:
// required) may run. The engine asks it each time a run reaches such a
// step, in every process that runs or resumes the run: kir serve asks the
// run's record in the cluster, the command line its --yes flag or the
// person at the terminal.
type Approvals interface {
	// Decide answers for step of run, whose resolved parameters are in
	// run.Step(step).Params. An error counts as no decision yet: the run
	// is held, never run unasked.
	Decide(ctx context.Context, run *Run, step string) (Decision, error)
}

// ApprovalsFunc is a function that is an Approvals.
type ApprovalsFunc func(ctx context.Context, run *Run, step string) (Decision, error)

// Decide calls f.
func (f ApprovalsFunc) Decide(ctx context.Context, run *Run, step string) (Decision, error) {
	return f(ctx, run, step)
}

// The verdicts of a Decision.
const (
	VerdictApproved = "approved"
	VerdictDenied   = "denied"
	// VerdictPending: nobody decided yet. The zero Decision is pending.
	VerdictPending = "pending"
)

// Decision is an answer to whether a step may run. Approved and denied
// decisions are recorded in the run's journal with the step.
type Decision struct {
	// Verdict is VerdictApproved, VerdictDenied or VerdictPending ("" is
	// pending).
	Verdict string `json:"verdict"`
	// By is who decided: the identity the API server authenticated, and
	// the OS user at a terminal.
	By string `json:"by,omitempty"`
	// Reason is why: required to deny; for a pending decision, what it
	// waits for.
	Reason string `json:"reason,omitempty"`
	// Via is how the decision was given, such as "cli --yes".
	Via string `json:"via,omitempty"`
	// At is when; the engine fills in the time it was asked when zero.
	At time.Time `json:"at,omitzero"`
}

// Held is where and why a held run waits.
type Held struct {
	Step   string    `json:"step"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// denial is a run's error when d denied its step.
func (d *Decision) denial(step string) string {
	if d == nil {
		return fmt.Sprintf("step %s was denied", step)
	}
	msg := fmt.Sprintf("step %s was denied", step)
	if d.By != "" {
		msg += " by " + d.By
	}
	if d.Reason != "" {
		msg += ": " + d.Reason
	}
	return msg
}

// ErrDenied is returned when resuming a run a person denied a step of.
var ErrDenied = errors.New("a step of the run was denied: it cannot be resumed")

// NoApprover is the reason a run is held when its engine has no
// Approvals.
const NoApprover = "the step needs approval and nobody was asked"

// approve asks whether step i, which needs approval, may run. It reports
// whether the step is passed over (a dry run plans it, and goes on),
// whether the run stops here (held, denied, or interrupted while asking),
// and an error when the journal cannot be written.
func (x *execution) approve(ctx context.Context, i int, sr *StepRun, log *slog.Logger) (skip, stop bool, err error) {
	if !x.env.DryRun.Persists() {
		// Planned, not run: nobody is asked to approve what would change
		// nothing, and a dry run must not act on a yes.
		sr.Status = StepNeedsApproval
		x.scope[sr.Name] = stepScope(sr)
		log.Info("dry run: the step needs approval, not run")
		return true, false, nil
	}
	if sr.Decision != nil && sr.Decision.Verdict == VerdictApproved {
		return false, false, nil // approved before the run was interrupted in it
	}
	stop, err = x.decide(ctx, i, sr, log)
	return false, stop, err
}

// decide asks Engine.Approvals about step i and records its answer.
func (x *execution) decide(ctx context.Context, i int, sr *StepRun, log *slog.Logger) (stop bool, err error) {
	d := Decision{Verdict: VerdictPending, Reason: NoApprover}
	if a := x.engine.Approvals; a != nil {
		d, err = a.Decide(ctx, x.run, sr.Name)
		if ctx.Err() != nil {
			sr.Status, sr.Error = StepPending, "interrupted"
			return true, nil
		}
		if err != nil {
			d = Decision{Verdict: VerdictPending, Reason: fmt.Sprintf("asking for approval: %v", err)}
		}
	}
	if d.At.IsZero() {
		d.At = x.env.Now().UTC()
	}
	switch d.Verdict {
	case VerdictApproved:
		sr.Decision = &d
		log.Info("step approved", "by", d.By, "via", d.Via)
		return false, x.record(recStepApproved, stepDecision{Index: i, Name: sr.Name, Decision: d})
	case VerdictDenied:
		sr.Decision = &d
		sr.Status, sr.Error = StepDenied, d.denial(sr.Name)
		x.scope[sr.Name] = stepScope(sr)
		log.Warn("step denied", "by", d.By, "via", d.Via, "reason", d.Reason)
		return true, x.record(recStepDenied, stepDecision{Index: i, Name: sr.Name, Decision: d})
	}
	if d.Reason == "" {
		d.Reason = "waiting for approval"
	}
	x.run.Status = RunHeld
	x.run.Held = &Held{Step: sr.Name, Reason: d.Reason, Since: d.At}
	log.Info("run held: the step needs approval", "reason", d.Reason)
	return true, x.record(recRunHeld, runHeld{Index: i, Name: sr.Name, Reason: d.Reason})
}
