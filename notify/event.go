package notify

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is what happened to a run.
type Kind string

// The kinds of event kir notifies.
const (
	// KindHeld: the run waits for a person to approve or deny it, at a
	// step that needs approval or held whole by a budget.
	KindHeld Kind = "held"
	// KindFinished: the run ran to its end.
	KindFinished Kind = "finished"
	// KindFailed: a step failed and the run stopped.
	KindFailed Kind = "failed"
	// KindRefused: the run did not start (a guard, a budget or the pause
	// switch refused it), or a person denied it.
	KindRefused Kind = "refused"
	// KindTampered: kir serve's tamper guard found a quarantine lifted,
	// and restored it, or a policy that re-opens it (package tamper).
	// Run is the quarantine's incident; Reason says what was found.
	KindTampered Kind = "tampered"
)

// Kinds lists every Kind, in the order digests count them.
var Kinds = []Kind{KindTampered, KindHeld, KindFailed, KindRefused, KindFinished}

func (k Kind) valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// Event is one run's notification. docs/notifications.md documents its
// JSON; fields are added, never renamed.
type Event struct {
	// ID identifies the event; Enqueue sets it. A digest lists events by
	// it, so a receiver can tell an event it already has.
	ID string `json:"id"`
	// Kind is what happened.
	Kind Kind `json:"kind"`
	// Run is the run's id, as `kir runs` takes it.
	Run string `json:"run"`
	// Incident is the incident the run belongs to.
	Incident string `json:"incident,omitempty"`
	// Playbook and Rule are the playbook run and the routing rule that
	// chose it.
	Playbook string `json:"playbook,omitempty"`
	Rule     string `json:"rule,omitempty"`
	// Alert summarises the alert the run answers.
	Alert *Alert `json:"alert,omitempty"`
	// Pods and Nodes are what the run acts on. At most MaxTargets of
	// each are listed; MorePods and MoreNodes count the rest.
	Pods      []Pod    `json:"pods,omitempty"`
	MorePods  int      `json:"morePods,omitempty"`
	Nodes     []string `json:"nodes,omitempty"`
	MoreNodes int      `json:"moreNodes,omitempty"`
	// Evidence says where the run's evidence is.
	Evidence *Evidence `json:"evidence,omitempty"`
	// Held is set for KindHeld: where the run waits, why, and how to
	// approve or deny it.
	Held *Held `json:"held,omitempty"`
	// Reason says why a run failed or was refused.
	Reason string `json:"reason,omitempty"`
	// Time is when it happened.
	Time time.Time `json:"time,omitzero"`
}

// Alert is what a notification tells of the alert a run answers.
type Alert struct {
	Rule     string    `json:"rule"`
	Priority string    `json:"priority,omitempty"`
	Time     time.Time `json:"time,omitzero"`
}

// Pod is a pod by namespace and name.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// Evidence is where a run's evidence is kept.
type Evidence struct {
	// Bundle is the evidence bundle's path.
	Bundle string `json:"bundle,omitempty"`
	// Replica is the kir serve replica that holds it.
	Replica string `json:"replica,omitempty"`
}

// Held says where a held run waits and what a person can do about it.
type Held struct {
	// Step is the step that needs approval; empty when a budget holds
	// the whole run before its first acting step.
	Step string `json:"step,omitempty"`
	// Reason is why it is held ("needs approval", "pod budget: 20 of
	// 20 in 10m").
	Reason string `json:"reason"`
	// Expires is when the hold ends unanswered, if it does.
	Expires time.Time `json:"expires,omitzero"`
	// Approve and Deny are the commands that answer it; Enqueue fills
	// them in (ApproveCommand, DenyCommand) when they are empty.
	Approve string `json:"approve"`
	Deny    string `json:"deny"`
}

// Limits that keep an event, and so a message, bounded whatever the
// alert held: its fields come from the workload, which may be the
// attacker's.
const (
	// MaxTargets is how many pods and nodes an event lists.
	MaxTargets = 50
	// maxField bounds each string field, in bytes.
	maxField = 1024
)

// safeArg is what a shell takes as one word without quoting.
var safeArg = regexp.MustCompile(`^[A-Za-z0-9._:/@%+=,-]+$`)

// shellQuote makes s one shell word.
func shellQuote(s string) string {
	if safeArg.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ApproveCommand is the command that approves run.
func ApproveCommand(run string) string {
	return "kir runs approve " + shellQuote(run)
}

// DenyCommand is the command that denies run; the reason is for the
// person to fill in.
func DenyCommand(run string) string {
	return "kir runs deny " + shellQuote(run) + " --reason '...'"
}

// check reports what makes e unfit to send.
func (e *Event) check() error {
	if !e.Kind.valid() {
		return fmt.Errorf("event kind %q: want one of %s", e.Kind, kindList())
	}
	if e.Run == "" {
		return fmt.Errorf("%s event without a run id", e.Kind)
	}
	return nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// bound truncates what could make e large, and fills in the commands of
// a held event.
func (e *Event) bound() {
	for _, p := range []*string{&e.Run, &e.Incident, &e.Playbook, &e.Rule, &e.Reason} {
		*p = truncate(*p)
	}
	if e.Alert != nil {
		a := *e.Alert
		a.Rule, a.Priority = truncate(a.Rule), truncate(a.Priority)
		e.Alert = &a
	}
	if e.Evidence != nil {
		ev := *e.Evidence
		ev.Bundle, ev.Replica = truncate(ev.Bundle), truncate(ev.Replica)
		e.Evidence = &ev
	}
	if len(e.Pods) > MaxTargets {
		e.MorePods += len(e.Pods) - MaxTargets
		e.Pods = e.Pods[:MaxTargets]
	}
	e.Pods = append([]Pod(nil), e.Pods...)
	for i := range e.Pods {
		e.Pods[i] = Pod{Namespace: truncate(e.Pods[i].Namespace), Name: truncate(e.Pods[i].Name)}
	}
	if len(e.Nodes) > MaxTargets {
		e.MoreNodes += len(e.Nodes) - MaxTargets
		e.Nodes = e.Nodes[:MaxTargets]
	}
	e.Nodes = append([]string(nil), e.Nodes...)
	for i := range e.Nodes {
		e.Nodes[i] = truncate(e.Nodes[i])
	}
	if e.Kind == KindHeld && e.Held == nil {
		e.Held = &Held{Reason: "needs approval"}
	}
	if e.Held != nil {
		h := *e.Held
		h.Step, h.Reason = truncate(h.Step), truncate(h.Reason)
		if h.Approve == "" {
			h.Approve = ApproveCommand(e.Run)
		}
		if h.Deny == "" {
			h.Deny = DenyCommand(e.Run)
		}
		h.Approve, h.Deny = truncate(h.Approve), truncate(h.Deny)
		e.Held = &h
	}
}

func truncate(s string) string {
	if len(s) <= maxField {
		return s
	}
	s = s[:maxField]
	// Cut at a rune boundary, so the JSON stays valid UTF-8 as sent.
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}
