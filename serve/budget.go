package serve

import (
	"context"
	"errors"
	"log/slog"

	"kir.dev/kir/budget"
	"kir.dev/kir/playbooks"
)

// overBudget holds a new run when kir is paused or its pod is over the
// installation's budget (Options.Budget), and reports whether it did:
// the match's record says Held and why, and a person's approval on it
// (kir runs approve) runs it regardless. A run already approved, or
// resumed, is not counted again. A budget that cannot be read holds the
// run too: it fails closed.
func (s *server) overBudget(ctx context.Context, t *task, log *slog.Logger) bool {
	b := s.o.Budget
	if b == nil || t.item.approved || s.guarded(ctx, t) {
		return false
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
		return false
	}
	log.Warn("run held: a person must approve it", "reason", why, "record", s.recordOf(t))
	s.o.Metrics.Runs.WithLabelValues(t.match.Playbook, "held").Inc()
	s.finishKey(t.match.Key, "held", 0)
	s.resolve(t, "held:"+why)
	return true
}

// guarded reports whether the run's guard refuses it: it is refused when
// it starts, and counts against no budget.
func (s *server) guarded(ctx context.Context, t *task) bool {
	entry, ok := s.o.Library.Get(t.match.Playbook)
	if !ok || s.o.Engine.Guard == nil {
		return false
	}
	params, err := playbooks.Bind(entry.Playbook, WithKey(entry.Playbook, t.match.Params, s.o.Key))
	if err != nil {
		return false
	}
	_, err = s.o.Engine.Guard(ctx, s.o.Env, entry.Playbook, params)
	return err != nil
}
