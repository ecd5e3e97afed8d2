package playbooks

import (
	"context"
	"fmt"
	"log/slog"
)

// Limits decides whether a limit defers a step that acts: kir serve's
// node budget defers a cordon over it. Unlike a step that needs approval,
// which holds the run where it stands, a deferred step is passed over:
// the steps after it run (a pod's isolation and evidence do not wait for
// its node's cordon), and the run ends held at the deferred step.
// Resuming the run asks Limits again for the deferred steps only; the
// steps that ran after them are not run again.
type Limits interface {
	// Defer answers for step of run, whose resolved parameters are in
	// run.Step(step).Params: VerdictApproved runs it (recorded in the
	// journal when By names a person who let it past the limit),
	// VerdictDenied denies it as a person's denial of a step that needs
	// approval does, and VerdictPending (the zero Decision) defers it,
	// with Reason saying why. An error defers it too: a limit that cannot
	// be read is not exceeded unasked.
	Defer(ctx context.Context, run *Run, step string) (Decision, error)
}

// LimitsFunc is a function that is a Limits.
type LimitsFunc func(ctx context.Context, run *Run, step string) (Decision, error)

// Defer calls f.
func (f LimitsFunc) Defer(ctx context.Context, run *Run, step string) (Decision, error) {
	return f(ctx, run, step)
}

// StepDeferred is the status of a step a limit deferred (Engine.Limits):
// it did not run, the run went on, and the run is held at it.
const StepDeferred = "deferred"

// recStepDeferred records that a limit deferred a step, and why.
const recStepDeferred = "step-deferred"

type stepDeferred struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// limit asks Engine.Limits about step i, about to act. It reports
// whether the step is passed over (deferred, recorded: the run goes on
// without it) and whether the run stops (a person denied the step).
func (x *execution) limit(ctx context.Context, i int, sr *StepRun, log *slog.Logger) (skip, stop bool, err error) {
	l := x.engine.Limits
	if l == nil || !x.env.DryRun.Persists() {
		return false, false, nil
	}
	d, err := l.Defer(ctx, x.run, sr.Name)
	if ctx.Err() != nil {
		sr.Status, sr.Error = StepPending, "interrupted"
		return false, true, nil
	}
	if err != nil {
		d = Decision{Verdict: VerdictPending, Reason: fmt.Sprintf("asking whether a limit defers it: %v", err)}
	}
	if d.At.IsZero() {
		d.At = x.env.Now().UTC()
	}
	switch d.Verdict {
	case VerdictApproved:
		if d.By == "" {
			return false, false, nil // under the limit
		}
		sr.Decision = &d
		log.Info("step let past its limit", "by", d.By, "via", d.Via)
		return false, false, x.record(recStepApproved, stepDecision{Index: i, Name: sr.Name, Decision: d})
	case VerdictDenied:
		sr.Decision = &d
		sr.Status, sr.Error = StepDenied, d.denial(sr.Name)
		x.scope[sr.Name] = stepScope(sr)
		log.Warn("step denied", "by", d.By, "via", d.Via, "reason", d.Reason)
		return false, true, x.record(recStepDenied, stepDecision{Index: i, Name: sr.Name, Decision: d})
	}
	if d.Reason == "" {
		d.Reason = "over a limit"
	}
	sr.Status, sr.Error = StepDeferred, d.Reason
	x.scope[sr.Name] = stepScope(sr)
	log.Warn("step deferred: over a limit, the run goes on without it", "reason", d.Reason)
	return true, false, x.record(recStepDeferred, stepDeferred{Index: i, Name: sr.Name, Reason: d.Reason})
}

// deferred returns the index of the run's first deferred step, or -1.
func (r *Run) deferred() int {
	for i, s := range r.Steps {
		if s.Status == StepDeferred {
			return i
		}
	}
	return -1
}
