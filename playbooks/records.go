package playbooks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"kir.dev/kir/action"
)

// The journal's record types. A run's journal starts with run-started,
// which holds the playbook itself, so that a resumed run follows the
// playbook it started with whatever happened to the file since.
const (
	recRunStarted   = "run-started"
	recRunResumed   = "run-resumed"
	recStepStarted  = "step-started"
	recStepSkipped  = "step-skipped"
	recStepNote     = "step-note"
	recStepFinished = "step-finished"
	recRunFinished  = "run-finished"
	// A step that needs approval: approved (before its step-started) or
	// denied (the run then finishes denied), by whom, when and why.
	recStepApproved = "step-approved"
	recStepDenied   = "step-denied"
	// The run stopped before a step that needs approval, with no
	// decision: it is held until resumed.
	recRunHeld = "run-held"
)

type runStarted struct {
	ID       string         `json:"id"`
	Playbook string         `json:"playbook"`
	Source   string         `json:"source"`
	Digest   string         `json:"digest"`
	YAML     string         `json:"yaml"`
	Params   map[string]any `json:"params"`
	Alert    map[string]any `json:"alert,omitempty"`
	Incident string         `json:"incident,omitempty"`
	Actor    string         `json:"actor,omitempty"`
	DryRun   action.DryRun  `json:"dryRun"`
	Version  string         `json:"version,omitempty"`
	// Forced lists the guard's refusals a person overrode (Engine.Guard).
	Forced []string `json:"forced,omitempty"`
}

type runResumed struct {
	Actor   string `json:"actor,omitempty"`
	Version string `json:"version,omitempty"`
	From    string `json:"from"` // the first step run again
}

type stepStarted struct {
	Index   int           `json:"index"`
	Name    string        `json:"name"`
	Action  string        `json:"action"`
	Params  action.Params `json:"params"`
	Attempt int           `json:"attempt"`
}

// stepNote is what an action noted mid-step (action.Env.Note).
type stepNote struct {
	Index int             `json:"index"`
	Name  string          `json:"name"`
	Data  json.RawMessage `json:"data"`
}

type stepSkipped struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Condition string `json:"condition"`
}

type stepFinished struct {
	Index    int            `json:"index"`
	Name     string         `json:"name"`
	Status   string         `json:"status"`
	Params   action.Params  `json:"params,omitempty"`
	Changed  bool           `json:"changed"`
	Output   any            `json:"output,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Writes   []action.Write `json:"writes,omitempty"`
	Error    string         `json:"error,omitempty"`
	Started  time.Time      `json:"started,omitzero"`
}

// stepDecision records an approval or a denial of a step.
type stepDecision struct {
	Index    int      `json:"index"`
	Name     string   `json:"name"`
	Decision Decision `json:"decision"`
}

// runHeld records where a run stopped to wait for a decision.
type runHeld struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

type runFinished struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func finishedOf(i int, sr *StepRun) stepFinished {
	return stepFinished{
		Index: i, Name: sr.Name, Status: sr.Status, Params: sr.Params, Changed: sr.Changed,
		Output: sr.Output, Warnings: sr.Warnings, Writes: sr.Writes, Error: sr.Error, Started: sr.Started,
	}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
