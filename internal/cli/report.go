package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"kir.dev/kir/internal/action"
	"kir.dev/kir/internal/catalog"
)

// Report is the result of a command that changes a cluster: the stable,
// documented shape of `-o json` and `-o yaml`.
type Report struct {
	APIVersion string `json:"apiVersion"` // kir.dev/v1alpha1
	Kind       string `json:"kind"`       // Report
	// Command is what was run, e.g. "contain pod".
	Command  string `json:"command"`
	Incident string `json:"incident"`
	// Actor is the identity kir acted as.
	Actor  string `json:"actor"`
	DryRun string `json:"dryRun"`
	// Status is succeeded, partial (some steps done, rerun to finish) or failed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Steps are the actions run, in order.
	Steps    []StepReport `json:"steps"`
	Warnings []string     `json:"warnings,omitempty"`
}

// StepReport is one action's outcome.
type StepReport struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	// Status is succeeded, failed or skipped.
	Status  string         `json:"status"`
	Changed bool           `json:"changed"`
	Error   string         `json:"error,omitempty"`
	Output  any            `json:"output,omitempty"`
	Writes  []action.Write `json:"writes,omitempty"`
	Params  action.Params  `json:"params,omitempty"`
}

// runner runs a command's actions in order and keeps the report.
type runner struct {
	reg    action.Registry
	env    action.Env
	report Report
	errs   []error
}

func newRunner(command string, env action.Env) *runner {
	return &runner{reg: catalog.Registry(), env: env, report: Report{
		APIVersion: "kir.dev/v1alpha1", Kind: "Report", Command: command,
		Incident: env.Incident, Actor: env.Actor, DryRun: string(env.DryRun), Steps: []StepReport{},
	}}
}

// run runs one action and records it. Invalid parameters are a usage error.
func (r *runner) run(ctx context.Context, name, actionName string, p action.Params) (action.Result, error) {
	a, ok := r.reg.Get(actionName)
	if !ok {
		return action.Result{}, fmt.Errorf("unknown action %q", actionName)
	}
	if err := a.Validate(p); err != nil {
		err = usageError{err}
		r.errs = append(r.errs, err)
		return action.Result{}, err
	}
	res, err := a.Run(ctx, r.env, p)
	step := StepReport{Name: name, Action: actionName, Status: "succeeded", Changed: res.Changed, Output: res.Output, Writes: res.Writes, Params: p}
	if err != nil {
		step.Status, step.Error = "failed", err.Error()
		r.errs = append(r.errs, err)
	}
	r.report.Steps = append(r.report.Steps, step)
	r.report.Warnings = appendUnique(r.report.Warnings, res.Warnings...)
	return res, err
}

// skip records a step not run, and why.
func (r *runner) skip(name, actionName, why string) {
	r.report.Steps = append(r.report.Steps, StepReport{Name: name, Action: actionName, Status: "skipped", Error: why})
}

// finish settles the status and the error the command returns: partial
// when any write was done before the failure.
func (r *runner) finish() error {
	err := errors.Join(r.errs...)
	switch {
	case err == nil:
		r.report.Status = "succeeded"
		return nil
	case r.anyDone():
		r.report.Status, r.report.Error = "partial", err.Error()
		return partialError{err}
	default:
		r.report.Status, r.report.Error = "failed", err.Error()
		return r.errs[0]
	}
}

func (r *runner) anyDone() bool {
	if !r.env.DryRun.Persists() {
		return false
	}
	for _, s := range r.report.Steps {
		for _, w := range s.Writes {
			if w.Done {
				return true
			}
		}
	}
	return false
}

// print writes the report in the requested format. In text, a run that
// failed before doing anything prints nothing: the error line says it all.
func (r *runner) print(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r.report)
	case "yaml":
		b, err := yaml.Marshal(r.report)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	if r.report.Status == "failed" && !r.anyDone() && len(r.report.Steps) <= 1 {
		return nil
	}
	return printText(w, r.report)
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		dup := false
		for _, have := range list {
			if have == it {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, it)
		}
	}
	return list
}
