package cli

import (
	"errors"
	"fmt"
	"io"

	"kir.dev/kir/playbooks"
)

// Report is the result of a command that runs a playbook: the stable,
// documented shape of `-o json` and `-o yaml` (docs/report.md).
type Report struct {
	APIVersion string `json:"apiVersion"` // kir.dev/v1alpha1
	Kind       string `json:"kind"`       // Report
	// Command is what was run, e.g. "contain pod".
	Command string `json:"command"`
	// Run is the run's id in the journal (kir runs show RUN); empty for a
	// dry run, which is not recorded.
	Run string `json:"run,omitempty"`
	// Playbook is the playbook run, and Source where it came from.
	Playbook string `json:"playbook"`
	Source   string `json:"source"`
	Incident string `json:"incident"`
	// Actor is the identity kir acted as.
	Actor  string `json:"actor"`
	DryRun string `json:"dryRun"`
	// Status is succeeded, partial (some steps done, rerun or resume to
	// finish), failed, interrupted (resume to finish), held (waiting for
	// the approval of the step Held names) or denied (a person denied a
	// step that needs approval).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Held says which step a held run waits at, and why.
	Held *playbooks.Held `json:"held,omitempty"`
	// Steps are the playbook's steps, in order, each with its status:
	// succeeded, failed, skipped (its condition did not hold), pending
	// (not reached) or unknown (started; the outcome was lost).
	Steps    []playbooks.StepRun `json:"steps"`
	Warnings []string            `json:"warnings,omitempty"`
}

func reportOf(command string, run *playbooks.Run) Report {
	r := Report{
		APIVersion: "kir.dev/v1alpha1", Kind: "Report", Command: command,
		Playbook: run.Playbook, Source: run.Source, Incident: run.Incident, Actor: run.Actor,
		DryRun: string(run.DryRun), Status: run.Status, Error: run.Error, Steps: run.Steps, Warnings: run.Warnings,
		Held: run.Held,
	}
	if run.Journaled {
		r.Run = run.ID
	}
	if r.Steps == nil {
		r.Steps = []playbooks.StepRun{}
	}
	return r
}

// runError is the error a command returns for a run: nil when it
// succeeded, partial when something was done before a failure.
func runError(run *playbooks.Run) error {
	err := run.Err()
	switch run.Status {
	case playbooks.RunSucceeded:
		return nil
	case playbooks.RunInterrupted:
		err = errors.New("interrupted")
		if run.Journaled {
			err = fmt.Errorf("interrupted; finish with: kir runs resume %s", run.ID)
		}
	case playbooks.RunHeld:
		// Held is no failure of what ran: its own code, whatever was done.
		if run.Held != nil {
			return heldError{run: run.ID, step: run.Held.Step, reason: run.Held.Reason}
		}
		return heldError{run: run.ID, reason: "no decision yet"}
	case playbooks.RunDenied:
		return deniedError{msg: run.Error}
	}
	if run.AnyDone() {
		return partialError{err}
	}
	return err
}

// printReport writes the report in the requested format. In text, a run
// that failed at one step and did nothing prints nothing: the error line
// says it all.
func printReport(w io.Writer, format string, r Report) error {
	if format == "json" || format == "yaml" {
		return printStructured(w, format, r)
	}
	failed := 0
	for _, s := range r.Steps {
		if s.Status == playbooks.StepFailed {
			failed++
		}
	}
	if r.Status == playbooks.RunFailed && failed <= 1 && !anyChanged(r) {
		return nil
	}
	return printText(w, r)
}

func anyChanged(r Report) bool {
	for _, s := range r.Steps {
		if s.Changed {
			return true
		}
		for _, w := range s.Writes {
			if w.Done {
				return true
			}
		}
	}
	return false
}
