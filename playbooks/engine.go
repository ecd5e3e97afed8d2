package playbooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/journal"
)

// Engine runs playbooks: it binds their parameters, evaluates each step's
// condition and parameters, runs its action, and records every step in a
// journal before the next one starts.
type Engine struct {
	// Actions are the actions steps can name.
	Actions action.Registry
	// Runs records runs; nil records nothing. Dry runs are never
	// recorded: they change nothing.
	Runs *Runs
	// Log receives progress; nil logs nothing.
	Log *slog.Logger
	// Version is kir's version, recorded in each run.
	Version string
	// Evidence is the folder where runs keep their evidence bundles by
	// default, one per run: expressions see Evidence/<run id> as
	// run.evidence ("" when Evidence is).
	Evidence string
	// Gate, when set, is called with the step's action name before the
	// action runs, and may make it wait: to bound how many of some
	// actions run at once, or to hold them behind more urgent work. The
	// action then runs with the context Gate returns, and release is
	// called once it has returned. An error (ctx ended while waiting)
	// interrupts the step, as a cancelled context does; release is then
	// not called.
	Gate func(ctx context.Context, action string) (stepCtx context.Context, release func(), err error)
	// Observe, when set, is called with each record of a journaled run
	// once it is durable (a read-only step's start: once appended), in
	// order, on the goroutine running the run, which waits for it.
	Observe func(Recorded)
	// Approvals decides whether the steps that need approval (approval:
	// required) may run; nil holds every run that reaches one (RunHeld):
	// such a step never runs unasked.
	Approvals Approvals
	// Limits, when set, is asked before each step that acts (never in a
	// dry run) whether a limit defers it (Limits). A deferred step does
	// not run; the run goes on without it and ends held at it.
	Limits Limits
	// Guard, when set, is called once by Start with the playbook and its
	// bound parameters, before the run is journaled or any step runs, dry
	// runs included: to refuse runs aimed at what kir must never act on
	// (package guard). An error refuses the run: Start returns it, having
	// recorded and changed nothing. What it returns otherwise are
	// refusals a person overrode: they are recorded in the run's
	// run-started record (as forced) and its warnings. Resumed runs, which
	// passed it when they started, are not asked again.
	Guard func(ctx context.Context, env action.Env, pb *Playbook, params map[string]any) (forced []string, err error)
}

// Request asks for one run of a playbook.
type Request struct {
	Playbook *Playbook
	// Params are the given parameters; Bind checks and completes them.
	Params map[string]any
	// Alert is the event that triggered the run, visible to expressions as
	// alert; nil when a person started it.
	Alert map[string]any
	// Env is what the actions run with: the client, dry-run mode,
	// incident and actor.
	Env action.Env
	// ID names the run; empty means a new, time-ordered id.
	ID string
	// Hold, when set, decides whether the run may go on. It is called
	// once, before the run's second step or its first step that acts,
	// whichever comes first (or at the end of a run of one read-only
	// step): a read-only first step runs beside whatever Hold waits on,
	// and no more than that is wasted if it refuses. If it returns an
	// error, the run stops having changed nothing and is discarded: its
	// default evidence bundle (run.evidence) and its journal are removed,
	// and Start returns a *HeldError. It suits a claim that must be won
	// before anything changes, made while the first step reads.
	Hold func(ctx context.Context) error
}

// HeldError is returned by Start when Request.Hold stopped the run.
type HeldError struct{ Err error }

func (e *HeldError) Error() string { return "the run was held back: " + e.Err.Error() }
func (e *HeldError) Unwrap() error { return e.Err }

// Start runs a playbook from its first step. The error is for what stops a
// run from starting (bad parameters, an unwritable journal); step failures
// are in the Run (Status, Err).
func (e *Engine) Start(ctx context.Context, req Request) (*Run, error) {
	env := req.Env.Defaults()
	pb := req.Playbook
	params, err := Bind(pb, req.Params)
	if err != nil {
		return nil, err
	}
	var forced []string
	if e.Guard != nil {
		if forced, err = e.Guard(ctx, env, pb, params); err != nil {
			return nil, err
		}
	}
	id := req.ID
	if id == "" {
		id = NewRunID(env.Now())
	}
	run := &Run{
		ID: id, Playbook: pb.Name, Source: pb.Source, Params: params,
		Incident: env.Incident, Actor: env.Actor, DryRun: env.DryRun,
		Status: RunInterrupted, Started: env.Now().UTC(), Steps: pendingSteps(pb),
	}
	run.addWarnings(forced)
	x := &execution{engine: e, pb: pb, run: run, env: env, alert: req.Alert, scope: map[string]any{}, found: &action.Found{}, hold: req.Hold}
	if e.Runs != nil && env.DryRun.Persists() {
		w, err := e.Runs.store.Create(id)
		if err != nil {
			return nil, fmt.Errorf("starting run %s: %w", id, err)
		}
		defer w.Close()
		x.w, run.Journaled = w, true
		if err := x.record(recRunStarted, runStarted{
			ID: id, Playbook: pb.Name, Source: pb.Source, Digest: digest(pb.Data), YAML: string(pb.Data),
			Params: params, Alert: req.Alert, Incident: env.Incident, Actor: env.Actor,
			DryRun: env.DryRun, Version: e.Version, Forced: forced,
		}); err != nil {
			return nil, err
		}
	}
	if err := x.from(ctx, 0); err != nil {
		var held *HeldError
		if errors.As(err, &held) {
			if derr := x.discard(); derr != nil {
				return nil, errors.Join(err, derr)
			}
			return nil, err
		}
		return run, err
	}
	return run, nil
}

// discard removes the default evidence bundle and the journal of a run
// that Hold stopped before it acted: the bundle first, so that a crash in
// between leaves a run to discard again rather than a bundle no run owns.
func (x *execution) discard() error {
	if p := x.evidencePath(); p != "" {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if x.w != nil {
		return x.w.Discard()
	}
	return nil
}

// holdOn calls the run's Hold, once.
func (x *execution) holdOn(ctx context.Context) error {
	if x.hold == nil {
		return nil
	}
	hold := x.hold
	x.hold = nil
	if err := hold(ctx); err != nil {
		return &HeldError{Err: err}
	}
	return nil
}

// execution is one run in progress.
type execution struct {
	engine *Engine
	pb     *Playbook
	run    *Run
	env    action.Env
	alert  map[string]any
	w      *journal.Writer // nil: not journaled
	// scope holds the finished steps' results as expressions see them.
	scope map[string]any
	// found is what the read-only steps read before a step that acts ran
	// in this process; nil once one has (action.Env.Found).
	found *action.Found
	// hold is Request.Hold until it is called.
	hold func(context.Context) error
}

// from runs the steps from index start on. It returns an error only when
// the journal cannot be written: the run's outcome is then unknown, and
// resuming it re-runs the step.
func (x *execution) from(ctx context.Context, start int) error {
	for i := start; i < len(x.pb.Steps); i++ {
		if st := x.run.Steps[i].Status; st == StepSucceeded || st == StepSkipped {
			continue // kept by Resume, past a deferred step
		}
		if ctx.Err() != nil {
			return x.sync() // interrupted: the journal says where to resume
		}
		abort, err := x.step(ctx, i)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return x.sync()
		}
		if abort {
			break
		}
	}
	if x.run.Status == RunHeld {
		return nil // waits for a decision; its run-held record is durable
	}
	if err := x.holdOn(ctx); err != nil {
		return err // a run of one read-only step
	}
	x.run.settle()
	if i := x.run.deferred(); i >= 0 && x.run.Status != RunDenied {
		sr := &x.run.Steps[i]
		x.run.Status, x.run.Error = RunHeld, ""
		x.run.Held = &Held{Step: sr.Name, Reason: sr.Error, Since: x.env.Now().UTC()}
		return x.record(recRunHeld, runHeld{Index: i, Name: sr.Name, Reason: sr.Error})
	}
	x.run.Finished = x.env.Now().UTC()
	return x.record(recRunFinished, runFinished{Status: x.run.Status, Error: x.run.Error})
}

// step runs step i and reports whether the run must stop.
func (x *execution) step(ctx context.Context, i int) (abort bool, err error) {
	s, sr := x.pb.Steps[i], &x.run.Steps[i]
	log := x.engine.log().With("run", x.run.ID, "step", s.Name, "action", s.Action)
	vars := x.vars()
	fail := func(err error) (bool, error) {
		sr.Status, sr.Error, sr.err = StepFailed, err.Error(), err
		x.scope[s.Name] = stepScope(sr)
		log.Warn("step failed", "err", err)
		rerr := x.recordFinished(i, sr)
		return s.OnError != OnErrorContinue, rerr
	}
	if s.When != nil {
		sr.Condition = s.When.Source
		v, err := s.When.eval(ctx, vars)
		if err != nil {
			return fail(fmt.Errorf("step %s: condition: %w", s.Name, err))
		}
		holds, ok := v.(bool)
		if !ok {
			return fail(fmt.Errorf("step %s: condition %q gave %s, not a bool", s.Name, s.When.Source, describe(v)))
		}
		sr.Holds = &holds
		if !holds {
			sr.Status = StepSkipped
			x.scope[s.Name] = stepScope(sr)
			log.Info("step skipped: condition does not hold", "condition", s.When.Source)
			// Not waited for: lost in a crash, the skip is found again on
			// resume, from the same durable params and step outputs.
			return false, x.recordUnsynced(recStepSkipped, stepSkipped{Index: i, Name: s.Name, Condition: s.When.Source})
		}
	}
	params := action.Params{}
	for _, k := range sortedKeys(s.With) {
		v, err := s.With[k].eval(ctx, vars)
		if err != nil {
			return fail(fmt.Errorf("step %s: parameter %s: %w", s.Name, k, err))
		}
		params[k] = v
	}
	sr.Params = params
	a, ok := x.engine.Actions.Get(s.Action)
	if !ok {
		return fail(fmt.Errorf("step %s: unknown action %q", s.Name, s.Action))
	}
	if err := a.Validate(params); err != nil {
		return fail(&StepParamError{Step: s.Name, Err: err})
	}
	readOnly := a.Spec().ReadOnly
	if !readOnly || i > 0 {
		if err := x.holdOn(ctx); err != nil {
			return true, err
		}
		if ctx.Err() != nil {
			return true, nil // interrupted while Hold was asked
		}
	}
	if s.Approval == ApprovalRequired {
		if skip, stop, err := x.approve(ctx, i, sr, log); skip || stop || err != nil {
			return stop, err
		}
	}
	if !readOnly {
		if skip, stop, err := x.limit(ctx, i, sr, log); skip || stop || err != nil {
			return stop, err
		}
	}
	sr.Attempts++
	sr.Started = x.env.Now().UTC()
	// The start of a step that changes something is durable before it
	// acts, and with it every record before it. A read-only step's is not
	// waited for: lost in a crash, resuming runs the step again, which is
	// harmless.
	started := stepStarted{Index: i, Name: s.Name, Action: s.Action, Params: params, Attempt: sr.Attempts}
	if readOnly {
		err = x.recordUnsynced(recStepStarted, started)
	} else {
		err = x.record(recStepStarted, started)
	}
	if err != nil {
		return true, err
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = DefaultStepTimeout
	}
	release, actx := func() {}, ctx
	if x.engine.Gate != nil {
		if actx, release, err = x.engine.Gate(ctx, s.Action); err != nil {
			sr.Status, sr.Error = StepPending, "interrupted"
			return true, nil
		}
	}
	sctx, cancel := context.WithTimeout(actx, timeout)
	log.Info("step started")
	env := x.stepEnv(i, sr)
	if !readOnly {
		x.found = nil // what was found is stale once this step acts
	}
	res, runErr := a.Run(sctx, env, params)
	cancel()
	release()
	if ctx.Err() != nil {
		// Interrupted: the outcome is unknown, so no finish is recorded
		// and resuming runs the step again.
		sr.Status, sr.Error = StepPending, "interrupted"
		return true, nil
	}
	out, err := plain(res.Output)
	if err != nil {
		out = nil
	}
	sr.Finished = x.env.Now().UTC()
	sr.Changed, sr.Output, sr.Warnings, sr.Writes = res.Changed, out, res.Warnings, res.Writes
	x.run.addWarnings(res.Warnings)
	if runErr != nil {
		if errors.Is(runErr, context.DeadlineExceeded) {
			runErr = fmt.Errorf("step %s timed out after %s: %w", s.Name, timeout, runErr)
		}
		return fail(runErr)
	}
	sr.Status = StepSucceeded
	x.scope[s.Name] = stepScope(sr)
	log.Info("step succeeded", "changed", res.Changed)
	return false, x.recordFinished(i, sr)
}

// recordFinished records step i's outcome without waiting for the disk:
// the next step's start, or the run's end, makes it durable before
// anything acts on it. Lost in a crash, the step counts as interrupted and
// is run again on resume, as a step whose end was never recorded is.
func (x *execution) recordFinished(i int, sr *StepRun) error {
	return x.recordUnsynced(recStepFinished, finishedOf(i, sr))
}

// stepEnv is the env step i's action runs with: the run's, with the notes
// of the step's earlier attempts and a Note that journals new ones.
func (x *execution) stepEnv(i int, sr *StepRun) action.Env {
	env := x.env
	env.Found = x.found
	env.Notes = slices.Clone(sr.Notes)
	env.Note = nil
	if x.w != nil {
		var mu sync.Mutex
		env.Note = func(data any) error {
			b, err := json.Marshal(data)
			if err != nil {
				return fmt.Errorf("noting step %s: %w", sr.Name, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err := x.record(recStepNote, stepNote{Index: i, Name: sr.Name, Data: b}); err != nil {
				return err
			}
			sr.Notes = append(sr.Notes, b)
			return nil
		}
	}
	return env
}

// vars are what expressions see.
func (x *execution) vars() map[string]any {
	alert := x.alert
	if alert == nil {
		alert = map[string]any{}
	}
	return map[string]any{
		varParams: x.run.Params,
		varSteps:  x.scope,
		varRun: map[string]any{
			"id": x.run.ID, "incident": x.run.Incident, "actor": x.run.Actor, "dryRun": string(x.run.DryRun),
			"journal": x.journalPath(), "evidence": x.evidencePath(),
		},
		varAlert: alert,
	}
}

// stepScope is a step's result as expressions see it. The output of a step
// that produced none is an empty map, so has(steps.x.output.y) is false
// rather than an error.
func stepScope(sr *StepRun) map[string]any {
	out := sr.Output
	if out == nil {
		out = map[string]any{}
	}
	return map[string]any{"status": sr.Status, "changed": sr.Changed, "output": out, "error": sr.Error}
}

// evidencePath is the run's default evidence bundle.
func (x *execution) evidencePath() string {
	if x.engine.Evidence == "" {
		return ""
	}
	return filepath.Join(x.engine.Evidence, x.run.ID)
}

// journalPath is the file of the run's journal, or "" when not journaled:
// evidence bundles carry a copy.
func (x *execution) journalPath() string {
	if x.w == nil {
		return ""
	}
	p, _ := x.engine.Runs.Path(x.run.ID) // the id was valid to create it
	return p
}

func (x *execution) record(typ string, data any) error {
	return x.append(typ, data, (*journal.Writer).Append)
}

// sync makes the records appended so far durable.
func (x *execution) sync() error {
	if x.w == nil {
		return nil
	}
	if err := x.w.Sync(); err != nil {
		return fmt.Errorf("recording run %s in its journal: %w", x.run.ID, err)
	}
	return nil
}

// recordUnsynced appends a record the next one makes durable.
func (x *execution) recordUnsynced(typ string, data any) error {
	return x.append(typ, data, (*journal.Writer).AppendUnsynced)
}

func (x *execution) append(typ string, data any, add func(*journal.Writer, string, any) (journal.Record, error)) error {
	if x.w == nil {
		return nil
	}
	rec, err := add(x.w, typ, data)
	if err != nil {
		return fmt.Errorf("recording run %s in its journal: %w", x.run.ID, err)
	}
	if x.engine.Observe != nil {
		x.engine.Observe(recorded(rec))
	}
	return nil
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func pendingSteps(pb *Playbook) []StepRun {
	out := make([]StepRun, len(pb.Steps))
	for i, s := range pb.Steps {
		out[i] = StepRun{Name: s.Name, Action: s.Action, Status: StepPending, Approval: s.Approval}
	}
	return out
}

// StepParamError is a step whose parameters its action rejects: a mistake
// in the playbook or in the parameters given to it.
type StepParamError struct {
	Step string
	Err  error
}

func (e *StepParamError) Error() string { return fmt.Sprintf("step %s: %v", e.Step, e.Err) }
func (e *StepParamError) Unwrap() error { return e.Err }

// NewRunID makes a run id that sorts by time: run-20261125-214512-3f9a1c.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "run-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}
