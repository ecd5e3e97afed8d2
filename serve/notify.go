package serve

import (
	"context"
	"strings"
	"time"

	"kir.dev/kir/notify"
	"kir.dev/kir/playbooks"
)

// Notifications (the routing config's notifications section, package
// notify): kir serve tells people of each run it held, finished, failed
// or refused. Events go to a durable outbox, never over the network on
// the run's path: a receiver that hangs delays nobody's isolation.

// openOutbox opens the outbox of the routing's notifications, if any.
func (s *server) openOutbox() error {
	c := s.o.Routing.Notifications
	if c == nil || len(c.Sinks) == 0 {
		return nil
	}
	dir := s.o.NotifyDir
	if dir == "" {
		dir = strings.TrimSuffix(s.o.SpoolDir, "/") + "-notify"
	}
	m := s.o.Metrics
	ob, err := notify.Open(dir, c, notify.WithLogger(s.o.Log), notify.WithMetrics(notify.Metrics{
		Sent:    func(sink string, n int) { m.Notifications.WithLabelValues(sink, "sent").Add(float64(n)) },
		Failed:  func(sink string) { m.Notifications.WithLabelValues(sink, "failed").Inc() },
		GivenUp: func(sink string, n int) { m.Notifications.WithLabelValues(sink, "given-up").Add(float64(n)) },
	}))
	if err != nil {
		return err
	}
	s.outbox = ob
	return nil
}

// notify enqueues the event of a match's outcome (resolve's), if it is
// one people are told of: held, finished, failed, refused. Duplicates and
// retries are not.
func (s *server) notify(t *task, outcome string) {
	if s.outbox == nil {
		return
	}
	ev, ok := s.event(t, outcome)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.outbox.Enqueue(ctx, ev); err != nil {
		s.o.Log.Error("queuing a notification", "run", ev.Run, "kind", ev.Kind, "err", err)
	}
}

// event is the notification of a match's outcome.
func (s *server) event(t *task, outcome string) (notify.Event, bool) {
	ev := notify.Event{Playbook: t.match.Playbook, Rule: t.match.Rule, Time: s.o.Now().UTC()}
	if t.alert != nil {
		ev.Alert = &notify.Alert{Rule: t.alert.Rule, Priority: t.alert.Priority.String(), Time: t.alert.Time.UTC()}
	}
	if ns, name := stringParam(t.match.Params, "namespace"), stringParam(t.match.Params, "name"); name != "" {
		ev.Pods = []notify.Pod{{Namespace: ns, Name: name}}
	}
	parts := strings.SplitN(outcome, ":", 4)
	switch {
	case parts[0] == "held":
		ev.Kind, ev.Run = notify.KindHeld, s.recordOf(t)
		ev.Held = &notify.Held{Reason: strings.TrimPrefix(outcome, "held:")}
		s.approveCommands(ev.Held, s.recordOf(t), "")
	case parts[0] == "refused":
		ev.Kind, ev.Run, ev.Reason = notify.KindRefused, strings.TrimPrefix(outcome, "refused:"), "refused: kir never acts on what it guards"
	case parts[0] == "ran" && len(parts) >= 3 && (len(parts) < 4 || parts[3] != "retry"):
		ev.Run = parts[1]
		ev.Evidence = &notify.Evidence{Replica: s.identity()}
		switch parts[2] {
		case playbooks.RunSucceeded:
			ev.Kind = notify.KindFinished
		case playbooks.RunHeld:
			ev.Kind, ev.Held = notify.KindHeld, &notify.Held{Reason: "a step needs approval"}
			step := ""
			if len(parts) == 4 {
				ev.Held.Reason = parts[3]
				if at, ok := strings.CutPrefix(parts[3], "at step "); ok {
					step, _, _ = strings.Cut(at, ": ")
				}
			}
			s.approveCommands(ev.Held, s.recordOf(t), step)
		default:
			ev.Kind, ev.Reason = notify.KindFailed, "run "+parts[1]+" ended "+parts[2]
		}
	case parts[0] == "error":
		ev.Kind, ev.Run, ev.Reason = notify.KindFailed, s.recordOf(t), strings.TrimPrefix(outcome, "error:")
	default:
		return ev, false // duplicate, retry, dry run
	}
	return ev, true
}

// approveCommands are the commands that answer a held record.
// A run held at a step is approved step by step.
func (s *server) approveCommands(h *notify.Held, rec, step string) {
	if rec == "" || s.rec == nil {
		return
	}
	ns := " --kir-namespace " + s.rec.o.Store.Namespace()
	h.Approve = "kir runs approve " + rec + ns
	if step != "" {
		h.Approve += " --step " + step
	}
	h.Deny = "kir runs deny " + rec + ns + " --reason '...'"
}

func (s *server) identity() string {
	if s.o.Claims != nil {
		return s.o.Claims.Identity
	}
	return ""
}

func stringParam(params map[string]any, name string) string {
	v, _ := params[name].(string)
	return v
}
