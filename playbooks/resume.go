package playbooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/journal"
)

// StepUnknown is the status of a step that started but whose outcome the
// journal does not hold (the process died): resuming runs it again, which
// is safe because actions are idempotent.
const StepUnknown = "unknown"

// ErrNoJournal is returned when the engine has no journal to read runs from.
var ErrNoJournal = errors.New("no journal: runs are not recorded")

// Load reads a run back from its journal.
func (e *Engine) Load(id string) (*Run, error) {
	r, err := e.read(id)
	if err != nil {
		return nil, err
	}
	if r.run.Status == RunInterrupted {
		if active, err := e.Runs.store.Active(id); err == nil && active {
			r.run.Status = "running"
		}
	}
	return r.run, nil
}

// List reads every recorded run, newest first. A journal that cannot be
// read is reported as a run with Status "unreadable" and the error.
func (e *Engine) List() ([]*Run, error) {
	if e.Runs == nil {
		return nil, ErrNoJournal
	}
	ids, err := e.Runs.store.List()
	if err != nil {
		return nil, err
	}
	out := make([]*Run, 0, len(ids))
	for _, id := range ids {
		r, err := e.Load(id)
		if errors.Is(err, journal.ErrNotFound) {
			continue // discarded since listed, or never begun
		}
		if err != nil {
			r = &Run{ID: id, Status: "unreadable", Error: err.Error()}
		}
		out = append(out, r)
	}
	// Ids sort by the second a run started; its first record, by the
	// nanosecond.
	slices.SortStableFunc(out, func(a, b *Run) int { return b.Started.Compare(a.Started) })
	return out, nil
}

// ErrFinished is returned when resuming a run that already succeeded.
var ErrFinished = errors.New("the run already succeeded: nothing to resume")

// Resume continues a recorded run: steps that succeeded (or were skipped)
// are not run again; from the first step that did not succeed — never
// started, started without a recorded outcome, or failed — every step runs
// as it would have. The incident is the run's; env gives the client and
// the identity acting now. A held run resumes at the step it waits for,
// which asks Engine.Approvals again: still undecided, the run is held
// again; a run with a denied step is not resumed (ErrDenied). Resuming a
// run that another live process is running fails with journal.ErrLocked.
func (e *Engine) Resume(ctx context.Context, id string, env action.Env) (*Run, error) {
	if e.Runs == nil {
		return nil, ErrNoJournal
	}
	w, recs, err := e.Runs.store.Reopen(id)
	if err != nil {
		return nil, fmt.Errorf("resuming run %s: %w", id, err)
	}
	defer w.Close()
	r, err := e.replay(id, recs)
	if err != nil {
		return nil, fmt.Errorf("resuming run %s: %w", id, err)
	}
	run := r.run
	switch run.Status {
	case RunSucceeded:
		return run, ErrFinished
	case RunDenied:
		return run, ErrDenied
	}
	start, kept := resumeFrom(run.Steps)
	scope := map[string]any{}
	for i := range run.Steps {
		if kept[i] {
			scope[run.Steps[i].Name] = stepScope(&run.Steps[i])
			continue
		}
		// What an earlier attempt noted, and an approval given, hold.
		old := run.Steps[i]
		run.Steps[i] = StepRun{Name: old.Name, Action: old.Action, Status: StepPending, Attempts: old.Attempts, Notes: old.Notes, Approval: old.Approval, Decision: old.Decision}
	}
	aenv := env.Defaults()
	aenv.Incident, aenv.DryRun = run.Incident, run.DryRun
	run.Status, run.Error, run.Finished, run.Resumes, run.Held = RunInterrupted, "", time.Time{}, run.Resumes+1, nil
	x := &execution{engine: e, pb: r.pb, run: run, env: aenv, alert: r.alert, scope: scope, w: w, found: &action.Found{}}
	from := ""
	if start < len(run.Steps) {
		from = run.Steps[start].Name
	}
	if err := x.record(recRunResumed, runResumed{Actor: aenv.Actor, Version: e.Version, From: from}); err != nil {
		return nil, err
	}
	return run, x.from(ctx, start)
}

// resumeFrom returns the first step a resumed run runs, and which steps
// it keeps: those that succeeded or were skipped before the first step
// that did not succeed — past deferred steps, which run again while the
// steps that ran after them do not.
func resumeFrom(steps []StepRun) (start int, kept []bool) {
	kept = make([]bool, len(steps))
	start = len(steps)
	for i, s := range steps {
		switch s.Status {
		case StepSucceeded, StepSkipped:
			kept[i] = true
			continue
		case StepDeferred:
			start = min(start, i)
			continue
		}
		return min(start, i), kept
	}
	return start, kept
}

// ErrActed is returned by Discard for a run that started a step that acts.
var ErrActed = errors.New("the run started a step that acts")

// Discard removes run id, its journal and its default evidence bundle,
// provided it never started a step that acts: what Start does itself when
// Hold stops a run, for a run a restart interrupted before its Hold was
// answered (say, one whose claim was since won by another process).
func (e *Engine) Discard(id string) error {
	if e.Runs == nil {
		return ErrNoJournal
	}
	// Held open (locked) from the read to the removal: no resume acts on
	// the run in between.
	w, recs, err := e.Runs.store.Reopen(id)
	if err != nil {
		return fmt.Errorf("discarding run %s: %w", id, err)
	}
	defer w.Close()
	r, err := e.replay(id, recs)
	if err != nil {
		return fmt.Errorf("discarding run %s: %w", id, err)
	}
	for _, s := range r.run.Steps {
		if s.Attempts == 0 {
			continue
		}
		if a, ok := e.Actions.Get(s.Action); !ok || !a.Spec().ReadOnly {
			return fmt.Errorf("discarding run %s: step %s: %w", id, s.Name, ErrActed)
		}
	}
	x := &execution{engine: e, run: r.run, w: w}
	if err := x.discard(); err != nil {
		return fmt.Errorf("discarding run %s: %w", id, err)
	}
	return nil
}

// read rebuilds run id from its journal.
func (e *Engine) read(id string) (*replayed, error) {
	if e.Runs == nil {
		return nil, ErrNoJournal
	}
	rr, err := e.Runs.store.Read(id)
	if err != nil {
		return nil, err
	}
	return e.replay(id, rr.Records)
}

// replayed is a run rebuilt from its journal.
type replayed struct {
	run   *Run
	pb    *Playbook
	alert map[string]any
}

func (e *Engine) replay(id string, recs []journal.Record) (*replayed, error) {
	if len(recs) == 0 {
		// A crash between the journal's creation and the run's start:
		// the run never began. Start takes such a journal over.
		return nil, fmt.Errorf("run %s: its journal is empty: %w", id, journal.ErrNotFound)
	}
	if recs[0].Type != recRunStarted {
		return nil, fmt.Errorf("journal of run %s does not start with %s", id, recRunStarted)
	}
	var st runStarted
	if err := decodeData(recs[0], &st); err != nil {
		return nil, err
	}
	pb, err := Load(st.Source, []byte(st.YAML), e.Actions)
	if err != nil {
		return nil, fmt.Errorf("the playbook run %s started with no longer loads with this kir: %w", id, err)
	}
	run := &Run{
		ID: id, Playbook: st.Playbook, Source: st.Source, Params: st.Params, Incident: st.Incident,
		Actor: st.Actor, DryRun: st.DryRun, Journaled: true, Status: RunInterrupted,
		Started: recs[0].Time, Steps: pendingSteps(pb),
	}
	stepAt := func(i int, name string) (*StepRun, error) {
		if i < 0 || i >= len(run.Steps) || run.Steps[i].Name != name {
			return nil, fmt.Errorf("journal of run %s names step %d %q, which its playbook does not have", id, i, name)
		}
		return &run.Steps[i], nil
	}
	for _, rec := range recs[1:] {
		switch rec.Type {
		case recRunResumed:
			run.Resumes++
			run.Status, run.Error, run.Finished, run.Held = RunInterrupted, "", time.Time{}, nil
		case recStepStarted:
			var d stepStarted
			if err := decodeData(rec, &d); err != nil {
				return nil, err
			}
			sr, err := stepAt(d.Index, d.Name)
			if err != nil {
				return nil, err
			}
			*sr = StepRun{Name: sr.Name, Action: sr.Action, Status: StepUnknown, Params: d.Params, Started: rec.Time, Attempts: d.Attempt, Notes: sr.Notes, Approval: sr.Approval, Decision: sr.Decision}
		case recStepNote:
			var d stepNote
			if err := json.Unmarshal(rec.Data, &d); err != nil {
				return nil, fmt.Errorf("journal record %d (%s): %w", rec.Seq, rec.Type, err)
			}
			sr, err := stepAt(d.Index, d.Name)
			if err != nil {
				return nil, err
			}
			sr.Notes = append(sr.Notes, d.Data)
		case recStepSkipped:
			var d stepSkipped
			if err := decodeData(rec, &d); err != nil {
				return nil, err
			}
			sr, err := stepAt(d.Index, d.Name)
			if err != nil {
				return nil, err
			}
			holds := false
			sr.Status, sr.Condition, sr.Holds = StepSkipped, d.Condition, &holds
		case recStepFinished:
			var d stepFinished
			if err := decodeData(rec, &d); err != nil {
				return nil, err
			}
			sr, err := stepAt(d.Index, d.Name)
			if err != nil {
				return nil, err
			}
			sr.Status, sr.Params, sr.Changed, sr.Output = d.Status, d.Params, d.Changed, d.Output
			sr.Warnings, sr.Writes, sr.Error, sr.Finished = d.Warnings, d.Writes, d.Error, rec.Time
			if sr.Condition == "" && e.condition(pb, d.Index) != "" {
				holds := true
				sr.Condition, sr.Holds = e.condition(pb, d.Index), &holds
			}
			run.addWarnings(d.Warnings)
		case recStepDeferred:
			var d stepDeferred
			if err := decodeData(rec, &d); err != nil {
				return nil, err
			}
			sr, err := stepAt(d.Index, d.Name)
			if err != nil {
				return nil, err
			}
			sr.Status, sr.Error = StepDeferred, d.Reason
		case recStepApproved, recStepDenied, recRunHeld:
			if err := replayApproval(rec, run, stepAt); err != nil {
				return nil, err
			}
		case recRunFinished:
			var d runFinished
			if err := decodeData(rec, &d); err != nil {
				return nil, err
			}
			run.Status, run.Error, run.Finished = d.Status, d.Error, rec.Time
		default:
			return nil, fmt.Errorf("journal of run %s: record %d has unknown type %q", id, rec.Seq, rec.Type)
		}
	}
	return &replayed{run: run, pb: pb, alert: st.Alert}, nil
}

// replayApproval applies a step-approved, step-denied or run-held record.
func replayApproval(rec journal.Record, run *Run, stepAt func(int, string) (*StepRun, error)) error {
	if rec.Type == recRunHeld {
		var d runHeld
		if err := decodeData(rec, &d); err != nil {
			return err
		}
		if _, err := stepAt(d.Index, d.Name); err != nil {
			return err
		}
		run.Status, run.Held = RunHeld, &Held{Step: d.Name, Reason: d.Reason, Since: rec.Time}
		return nil
	}
	var d stepDecision
	if err := decodeData(rec, &d); err != nil {
		return err
	}
	sr, err := stepAt(d.Index, d.Name)
	if err != nil {
		return err
	}
	sr.Decision = &d.Decision
	if rec.Type == recStepDenied {
		sr.Status, sr.Error = StepDenied, d.Decision.denial(d.Name)
	}
	return nil
}

func (e *Engine) condition(pb *Playbook, i int) string {
	if i < len(pb.Steps) && pb.Steps[i].When != nil {
		return pb.Steps[i].When.Source
	}
	return ""
}

// decodeData decodes a record's data with numbers as expressions see them.
func decodeData(rec journal.Record, into any) error {
	dec := json.NewDecoder(bytes.NewReader(rec.Data))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("journal record %d (%s): %w", rec.Seq, rec.Type, err)
	}
	normalize(into)
	return nil
}

// normalize turns the json.Numbers of decoded records into int64 or float64.
func normalize(v any) {
	switch v := v.(type) {
	case *runStarted:
		numbers(map[string]any(v.Params))
		numbers(v.Alert)
	case *stepStarted:
		numbers(map[string]any(v.Params))
	case *stepFinished:
		numbers(map[string]any(v.Params))
		v.Output = numbers(v.Output)
	}
}

// PendingActions returns the actions a resume of run id may still call:
// those of the steps that did not succeed and were not skipped, except the
// steps whose condition is false given the run's parameters alone. A
// command uses it to learn whether resuming needs a cluster.
func (e *Engine) PendingActions(ctx context.Context, id string) ([]string, error) {
	r, err := e.read(id)
	if err != nil {
		return nil, err
	}
	vars := map[string]any{varParams: r.run.Params, varSteps: map[string]any{}, varRun: map[string]any{}, varAlert: map[string]any{}}
	var out []string
	for i, s := range r.pb.Steps {
		if st := r.run.Steps[i].Status; st == StepSucceeded || st == StepSkipped {
			continue
		}
		if s.When != nil {
			// A condition that needs more than the parameters (an
			// earlier step's output) cannot rule the step out.
			if v, err := s.When.eval(ctx, vars); err == nil && v == false {
				continue
			}
		}
		out = append(out, s.Action)
	}
	return out, nil
}
