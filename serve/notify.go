package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"kir.dev/kir/notify"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/record"
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
	if ev, ok := s.event(t, outcome); ok {
		s.enqueue1(ev)
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
				step = heldStep(parts[3])
			}
			ev.Held.Step = step
			s.approveCommands(ev.Held, s.recordOf(t), step)
		default:
			ev.Kind, ev.Reason = notify.KindFailed, "run "+parts[1]+" ended "+parts[2]
		}
	case parts[0] == "error":
		ev.Kind, ev.Run, ev.Reason = notify.KindFailed, s.recordOf(t), strings.TrimPrefix(outcome, "error:")
	default:
		return ev, false // duplicate, retry, dry run
	}
	if rec := s.recordOf(t); rec != "" {
		// Stable, from what the record's status says: a replica that
		// adopts a held record sends the same id.
		_, _, msg := phaseOf(outcome)
		ev.ID = eventID(rec, ev.Kind, truncate(msg, 4096))
	}
	return ev, true
}

// heldStep is the step a held run's reason (heldWhy) names, or "".
func heldStep(why string) string {
	at, ok := strings.CutPrefix(strings.TrimLeft(why, ": "), "at step ")
	if !ok {
		return ""
	}
	step, _, _ := strings.Cut(at, ": ")
	return step
}

// eventID names the notification of kind about record rec, whose status
// message is msg: the same from every replica that sends it.
func eventID(rec string, kind notify.Kind, msg string) string {
	sum := sha256.Sum256([]byte(msg))
	return rec + "-" + string(kind) + "-" + hex.EncodeToString(sum[:6])
}

// recordEvent is the notification of kind about a record, from what the
// record holds: for a replica that did not run it.
func (s *server) recordEvent(rec *record.Response, kind notify.Kind) notify.Event {
	ev := notify.Event{Kind: kind, Run: rec.Name, Incident: rec.Status.Incident, Playbook: rec.Spec.Playbook,
		Rule: rec.Spec.RoutingRule, Time: s.o.Now().UTC()}
	if rec.Spec.AlertRule != "" {
		ev.Alert = &notify.Alert{Rule: rec.Spec.AlertRule, Priority: rec.Spec.AlertPriority, Time: rec.Spec.Received.UTC()}
	}
	if ns, name, ok := strings.Cut(rec.Spec.Target, "/"); ok {
		ev.Pods = []notify.Pod{{Namespace: ns, Name: name}}
	} else if rec.Spec.Target != "" {
		ev.Nodes = []string{rec.Spec.Target}
	}
	return ev
}

// renotifyHeld sends again that a held record, adopted from a replica
// whose heartbeat lapsed, waits for a person.
func (s *server) renotifyHeld(rec *record.Response) {
	ev := s.recordEvent(rec, notify.KindHeld)
	ev.ID = eventID(rec.Name, notify.KindHeld, rec.Status.Message)
	_, why, _ := strings.Cut(rec.Status.Message, " held")
	ev.Held = &notify.Held{Step: heldStep(why), Reason: rec.Status.Message}
	if rec.Status.ExpiresAt != nil {
		ev.Held.Expires = rec.Status.ExpiresAt.UTC()
	}
	s.approveCommands(ev.Held, rec.Name, ev.Held.Step)
	s.o.Log.Warn("adopted a held record from a replica whose heartbeat lapsed; telling people again", "record", rec.Name)
	s.enqueue1(ev)
}

// notifyExpired says that a held record expired unanswered.
func (s *server) notifyExpired(rec *record.Response) {
	ev := s.recordEvent(rec, notify.KindRefused)
	ev.ID, ev.Reason = rec.Name+"-expired", rec.Status.Message
	s.enqueue1(ev)
}

// enqueue1 queues one notification, if there are notifications.
func (s *server) enqueue1(ev notify.Event) {
	if s.outbox == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.outbox.Enqueue(ctx, ev); err != nil {
		s.o.Log.Error("queuing a notification", "run", ev.Run, "kind", ev.Kind, "err", err)
	}
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
