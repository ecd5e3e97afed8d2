package playbooks

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"kir.dev/kir/action"
)

// The statuses of a run.
const (
	RunSucceeded   = "succeeded"   // every step succeeded or was skipped
	RunFailed      = "failed"      // a step failed before anything was changed
	RunPartial     = "partial"     // a step failed after others changed something: resume or rerun to finish
	RunInterrupted = "interrupted" // stopped (signal, kill) before the end: resume to finish
	// RunNotEnforced: every step that failed failed because the node did
	// not enforce an isolation in time (action.ErrNotEnforced): the pod
	// is labelled and its policy stored, but it still reaches what the
	// policy denies. Never read as contained.
	RunNotEnforced = "not-enforced"
	// RunHeld: the run stopped before a step that needs approval, with no
	// decision yet (Run.Held says which and why): nothing after it ran,
	// and resuming it once the step is approved runs it and what follows.
	// Or a limit deferred a step (StepDeferred, Engine.Limits): the run
	// went on without it, and resuming it runs the deferred steps.
	RunHeld = "held"
	// RunDenied: a person denied a step that needs approval. What ran
	// before it stands (an isolation is kept); it and what follows did
	// not run, and the run cannot be resumed.
	RunDenied = "denied"
)

// The statuses of a step.
const (
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped" // its condition did not hold
	StepPending   = "pending" // not run: the run stopped before it
	StepDenied    = "denied"  // needs approval, and a person denied it
	// StepNeedsApproval: a dry run reached a step that needs approval; it
	// was planned, not run.
	StepNeedsApproval = "needs-approval"
)

// Run is the record of one playbook run, as the engine reports it and as
// its journal holds it.
type Run struct {
	// ID names the run: `kir runs show ID`, `kir runs resume ID`.
	ID       string         `json:"id"`
	Playbook string         `json:"playbook"`
	Source   string         `json:"source"`
	Params   map[string]any `json:"params"`
	Incident string         `json:"incident,omitempty"`
	// Actor is the identity the run acts as.
	Actor  string        `json:"actor,omitempty"`
	DryRun action.DryRun `json:"dryRun"`
	// Journaled is false for dry runs, which leave no record.
	Journaled bool      `json:"journaled"`
	Status    string    `json:"status"`
	Error     string    `json:"error,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
	// Resumes counts the times the run was resumed.
	Resumes int       `json:"resumes,omitempty"`
	Steps   []StepRun `json:"steps"`
	// Warnings gathers the steps' warnings, without repeats.
	Warnings []string `json:"warnings,omitempty"`
	// Held says where and why a run whose Status is RunHeld waits.
	Held *Held `json:"held,omitempty"`
}

// StepRun is what happened to one step.
type StepRun struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Status string `json:"status"`
	// Condition is the step's when: expression, if any, and Holds its
	// value when it was evaluated.
	Condition string `json:"condition,omitempty"`
	Holds     *bool  `json:"holds,omitempty"`
	// Params are the resolved parameters the action ran with.
	Params   action.Params  `json:"params,omitempty"`
	Changed  bool           `json:"changed"`
	Output   any            `json:"output,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Writes   []action.Write `json:"writes,omitempty"`
	Error    string         `json:"error,omitempty"`
	Started  time.Time      `json:"started,omitzero"`
	Finished time.Time      `json:"finished,omitzero"`
	// Attempts counts how often the step was started: more than one when
	// a run was resumed after the step's outcome was lost.
	Attempts int `json:"attempts,omitempty"`
	// Notes are what the action recorded mid-step, over every attempt
	// (action.Env.Note): versions and hashes, never secret values.
	Notes []json.RawMessage `json:"notes,omitempty"`
	// Approval is "required" for a step that needs approval, and Decision
	// the approval or denial it got (who, when, why).
	Approval string    `json:"approval,omitempty"`
	Decision *Decision `json:"decision,omitempty"`

	err error // the action's error, when it ran in this process
}

// Err returns the errors of the failed steps, joined; the errors of steps
// run in this process keep their type (for exit codes).
func (r *Run) Err() error {
	var errs []error
	for _, s := range r.Steps {
		if s.Status != StepFailed {
			continue
		}
		if s.err != nil {
			errs = append(errs, s.err)
		} else {
			errs = append(errs, errors.New(s.Error))
		}
	}
	return errors.Join(errs...)
}

// notEnforced reports whether the step failed only because an isolation
// was not enforced. A step loaded from a journal has its error's text.
func (s *StepRun) notEnforced() bool {
	if s.err != nil {
		return isOnly(s.err, action.ErrNotEnforced)
	}
	return strings.Contains(s.Error, action.ErrNotEnforced.Error())
}

// isOnly reports whether every error joined in err is target.
func isOnly(err, target error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !isOnly(e, target) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, target)
}

// AnyDone reports whether any write took effect.
func (r *Run) AnyDone() bool {
	if !r.DryRun.Persists() {
		return false
	}
	for _, s := range r.Steps {
		for _, w := range s.Writes {
			if w.Done {
				return true
			}
		}
	}
	return false
}

// Step returns the named step's record.
func (r *Run) Step(name string) *StepRun {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

func (r *Run) settle() {
	failed, notEnforced := false, true
	for _, s := range r.Steps {
		if s.Status == StepDenied {
			r.Status, r.Error = RunDenied, s.Decision.denial(s.Name)
			return
		}
	}
	for _, s := range r.Steps {
		if s.Status == StepFailed {
			failed = true
			notEnforced = notEnforced && s.notEnforced()
		}
	}
	switch {
	case !failed:
		r.Status, r.Error = RunSucceeded, ""
	case notEnforced:
		r.Status, r.Error = RunNotEnforced, r.Err().Error()
	case r.AnyDone():
		r.Status, r.Error = RunPartial, r.Err().Error()
	default:
		r.Status, r.Error = RunFailed, r.Err().Error()
	}
}

func (r *Run) addWarnings(ws []string) {
	for _, w := range ws {
		dup := false
		for _, have := range r.Warnings {
			if have == w {
				dup = true
				break
			}
		}
		if !dup {
			r.Warnings = append(r.Warnings, w)
		}
	}
}
