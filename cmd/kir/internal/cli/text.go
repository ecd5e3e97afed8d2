package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

// printText writes the short human summary of a report: per step, what
// its output says of itself (action.Texter), decoded as its action's
// type whether the run happened here or is read from a journal.
func printText(w io.Writer, r Report) error {
	p := &textPrinter{w: w, actions: registry()}
	dry := ""
	if r.DryRun != "none" && r.DryRun != "" {
		dry = fmt.Sprintf(" (dry run: %s — nothing persisted)", r.DryRun)
	}
	if r.Incident != "" {
		p.line("incident %s, acting as %s%s", r.Incident, r.Actor, dry)
	} else {
		p.line("acting as %s%s", r.Actor, dry)
	}
	for _, s := range r.Steps {
		if dry != "" {
			p.plan(s)
		}
		p.step(r, s)
	}
	p.outcome(r)
	return p.err
}

type textPrinter struct {
	w       io.Writer
	actions action.Registry
	err     error
}

func (p *textPrinter) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// step prints a step's output's lines, then what its status adds.
func (p *textPrinter) step(r Report, s playbooks.StepRun) {
	out, err := p.actions.Output(s.Action, s.Output)
	if err != nil {
		out = s.Output // an output this kir cannot read: no text
	}
	texter, _ := out.(action.Texter)
	if texter != nil {
		for _, l := range texter.Text() {
			p.line("%s", l)
		}
	}
	switch s.Status {
	case playbooks.StepFailed:
		// An output with no text of its own (rotate's) leaves the failure
		// to the command's error line.
		if _, shown := out.(action.ItemErrors); out == nil || texter != nil && !shown {
			p.line("%s: FAILED: %s", s.Name, s.Error)
		}
	case playbooks.StepSkipped:
		// A step the responder's flags turned off (--no-cordon,
		// --no-evidence, no --evidence) is no news; the plan and -o json
		// show every condition.
		if r.DryRun != "none" && r.DryRun != "" {
			p.line("%s: skipped: its condition does not hold: %s", s.Name, s.Condition)
		}
	case playbooks.StepUnknown:
		p.line("%s: started, outcome unknown (the run was interrupted); resuming runs it again", s.Name)
	case playbooks.StepPending:
		if r.Held != nil && r.Held.Step == s.Name {
			p.line("%s: HELD: needs approval (%s)", s.Name, r.Held.Reason)
		} else if r.Status != playbooks.RunSucceeded {
			p.line("%s: not run", s.Name)
		}
	case playbooks.StepDenied:
		p.line("%s: DENIED: %s", s.Name, s.Error)
	case playbooks.StepNeedsApproval:
		p.line("%s: needs approval: not run in a dry run", s.Name)
	case playbooks.StepDeferred:
		p.line("%s: DEFERRED: %s; the run went on without it, and is held until a person approves it", s.Name, s.Error)
	}
	if s.Decision != nil && s.Decision.Verdict == playbooks.VerdictApproved {
		p.line("%s: approved by %s (%s) at %s", s.Name, s.Decision.By, s.Decision.Via, s.Decision.At.UTC().Format(time.RFC3339))
	}
}

// outcome prints the run's warnings and what to do next.
func (p *textPrinter) outcome(r Report) {
	for _, warn := range r.Warnings {
		p.line("warning: %s", warn)
	}
	switch {
	case r.Status == playbooks.RunPartial && r.Run != "":
		p.line("PARTIAL: some steps were done and some failed (see above); run the same command again, or kir runs resume %s, to finish", r.Run)
	case r.Status == playbooks.RunPartial:
		p.line("PARTIAL: some steps were done and some failed (see above); run the same command again to finish")
	case r.Status == playbooks.RunNotEnforced:
		p.line("NOT ENFORCED: the quarantine policy is stored, but the node did not enforce it in time: the pod still reaches what the policy denies and its open sessions were not cut; check the network plugin (kir doctor), then run the same command again")
	case r.Status == playbooks.RunInterrupted && r.Run != "":
		p.line("INTERRUPTED: finish with kir runs resume %s", r.Run)
	case r.Status == playbooks.RunHeld && r.Held != nil:
		p.line("HELD: step %s needs approval; what ran before it stands. Approve it with: %s", r.Held.Step, approveCommand(r.Run, r.Held.Step))
	case r.Status == playbooks.RunDenied:
		p.line("DENIED: %s; what ran before it stands", r.Error)
	}
	if r.Run != "" {
		p.line("recorded as run %s (kir runs show %s)", r.Run, r.Run)
	}
}

// plan prints a step of a dry run: whether its condition holds, the
// parameters it resolved to and the writes it sent or would send.
func (p *textPrinter) plan(s playbooks.StepRun) {
	p.line("step %s (%s): %s", s.Name, s.Action, s.Status)
	if s.Condition != "" && s.Holds != nil {
		p.line("  when %s: %v", s.Condition, *s.Holds)
	}
	if len(s.Params) > 0 {
		b, _ := json.Marshal(s.Params)
		p.line("  with %s", b)
	}
	for _, w := range s.Writes {
		id := w.Name
		if w.Namespace != "" {
			id = w.Namespace + "/" + w.Name
		}
		state := "would be sent"
		if w.Done {
			state = "accepted by the server, not persisted"
		}
		if w.Error != "" {
			state = "REJECTED: " + w.Error
		}
		p.line("  %s %s %s: %s", w.Verb, w.Kind, id, state)
		if w.Done && w.Body != nil { // a server dry run: the exact object
			if b, err := yaml.Marshal(w.Body); err == nil {
				p.line("    %s", strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    "))
			}
		}
	}
}
