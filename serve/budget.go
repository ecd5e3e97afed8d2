package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"kir.dev/kir/action"
	"kir.dev/kir/budget"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/record"
)

// overBudget holds a new run when kir is paused or its pod is over the
// installation's budget (Options.Budget), and reports whether it did:
// the match's record says Held and why, and a person's approval on it
// (kir runs approve) runs it regardless. A run already approved, or
// resumed, is not counted again. A budget that cannot be read holds the
// run too: it fails closed.
//
// The guard's answer, asked here so that a refused run counts against no
// budget, is handed to the run in the context it returns: the run does
// not ask again (guardedContext).
func (s *server) overBudget(ctx context.Context, t *task, log *slog.Logger) (context.Context, bool) {
	b := s.o.Budget
	if b == nil || t.item.approved {
		return ctx, false
	}
	ctx, refused := s.guarded(ctx, t)
	if refused {
		return ctx, false
	}
	why := ""
	slot := t.record // named before it is written
	if slot == "" {
		slot = s.runID(t)
	}
	_, err := b.TakeUnlessPaused(ctx, budget.Pod, slot, []string{target(t.match.Params)})
	switch over, paused := (*budget.OverBudget)(nil), (*budget.PausedError)(nil); {
	case errors.As(err, &over):
		why = over.Error()
	case errors.As(err, &paused):
		why = paused.Error()
	case err != nil:
		why = "the budget could not be taken: " + err.Error()
	}
	if why == "" {
		return ctx, false
	}
	log.Warn("run held: a person must approve it", "reason", why, "record", s.recordOf(t))
	s.o.Metrics.Runs.WithLabelValues(t.match.Playbook, "held").Inc()
	s.finishKey(t.match.Key, "held", 0)
	s.resolve(t, "held:"+why)
	return ctx, true
}

// guarded asks the run's guard now, and reports whether it refuses the
// run (it is then refused when it starts, and counts against no budget).
// The context it returns carries the answer to the run's start.
func (s *server) guarded(ctx context.Context, t *task) (context.Context, bool) {
	entry, ok := s.o.Library.Get(t.match.Playbook)
	if !ok || s.guard == nil {
		return ctx, false
	}
	params, err := playbooks.Bind(entry.Playbook, WithKey(entry.Playbook, t.match.Params, s.o.Key))
	if err != nil {
		return ctx, false
	}
	forced, err := s.guard(ctx, s.o.Env, entry.Playbook, params)
	return context.WithValue(ctx, guardedKey{}, &guarded{playbook: entry.Playbook, forced: forced, err: err}), err != nil
}

// guarded is the guard's answer for a run, asked before the budget.
type guarded struct {
	playbook *playbooks.Playbook
	forced   []string
	err      error
}

type guardedKey struct{}

// guardedContext is the engine's Guard: the answer overBudget already
// had for this run, else the guard's. A storm's run reads the protect
// list once, not twice.
func (s *server) guardedContext(ctx context.Context, env action.Env, pb *playbooks.Playbook, params map[string]any) ([]string, error) {
	if g, ok := ctx.Value(guardedKey{}).(*guarded); ok && g.playbook == pb {
		return g.forced, g.err
	}
	return s.guard(ctx, env, pb, params)
}

// budgetedNodeActions are the actions the node budget counts: their
// "nodes" parameter names the nodes they cordon.
var budgetedNodeActions = map[string]bool{"contain.cordon-node": true}

// deferStep is the engine's Limits: a cordon over the node budget is
// deferred — the pod's isolation and evidence go on, the run ends held at
// the cordon — until a person approves that step (kir runs approve
// --step cordon) or the whole run on its record; a person's denial of the
// step ends the run denied, the isolation kept. A budget that cannot be
// read defers it too.
func (s *server) deferStep(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
	under := playbooks.Decision{Verdict: playbooks.VerdictApproved}
	sr := run.Step(step)
	if s.o.Budget == nil || sr == nil || !budgetedNodeActions[sr.Action] {
		return under, nil
	}
	slot, name, how := run.ID+"/"+step, s.rec.recordOfRun(run.ID), ""
	if name != "" {
		rec, err := s.rec.o.Store.Get(ctx, name)
		if err != nil {
			return playbooks.Decision{}, fmt.Errorf("reading the run's record %s for a decision: %w", name, err)
		}
		if d, ok := personsDecision(rec, step); ok {
			return d, nil
		}
		slot, how = name+"/"+step, "; approve it with kir runs approve "+name+" --step "+step
	}
	nodes, err := stringList(sr.Params["nodes"])
	if err != nil {
		return playbooks.Decision{}, fmt.Errorf("step %s: %w", step, err)
	}
	_, err = s.o.Budget.Take(ctx, budget.Node, slot, nodes)
	var over *budget.OverBudget
	if errors.As(err, &over) {
		s.o.Metrics.Runs.WithLabelValues(run.Playbook, "deferred").Inc()
		return playbooks.Decision{Verdict: playbooks.VerdictPending, Reason: over.Error() + how}, nil
	}
	if err != nil {
		return playbooks.Decision{}, err
	}
	return under, nil
}

// personsDecision returns what a person decided on rec for step: the
// step's own decision, else an approval of the whole run.
func personsDecision(rec *record.Response, step string) (playbooks.Decision, bool) {
	a, ok := rec.Decision(step)
	if !ok {
		if a, ok = rec.Decision(""); !ok || a.Decision != record.Approve {
			return playbooks.Decision{}, false
		}
	}
	return asDecision(rec, a), true
}

// asDecision is a person's decision a on record rec, as the engine reads it.
func asDecision(rec *record.Response, a record.Approval) playbooks.Decision {
	verdict := playbooks.VerdictApproved
	if a.Decision == record.Deny {
		verdict = playbooks.VerdictDenied
	}
	return playbooks.Decision{Verdict: verdict, By: a.By, Reason: a.Reason, Via: "response record " + rec.Name, At: a.At.Time}
}

// stringList reads a parameter that is a list of strings.
func stringList(v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("nodes: %v is not a node name", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("nodes: %T is not a list of node names", v)
}
