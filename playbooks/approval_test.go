package playbooks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

// approvalPlaybook isolates, then revokes (which needs approval), then
// reports: the shape of contain-pod with its revocation last but one.
const approvalPlaybook = `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: approve-me
parameters:
  - name: revoke
    type: bool
    default: true
steps:
  - name: isolate
    action: test.act
    with: {name: isolate}
  - name: revoke
    action: test.act
    approval: required
    when: params.revoke
    with: {name: revoke}
  - name: after
    action: test.act
    with: {name: after}
`

// counted runs test.act and counts its runs by name.
type counted struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counted) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.runs {
		out[k] = v
	}
	return out
}

func approvalEngine(t *testing.T) (*playbooks.Engine, *playbooks.Playbook, *counted) {
	t.Helper()
	c := &counted{runs: map[string]int{}}
	reg, err := action.NewRegistry(action.Func[nameParams, any]{
		Name: "test.act", Summary: "Act.",
		Do: func(ctx context.Context, env action.Env, p nameParams) (action.Result, error) {
			c.mu.Lock()
			c.runs[p.Name]++
			c.mu.Unlock()
			return action.Result{Changed: true, Writes: []action.Write{{Kind: "Pod", Name: p.Name, Done: env.DryRun.Persists()}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := playbooks.Load("approve.yaml", []byte(approvalPlaybook), reg)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Steps[1].Approval != playbooks.ApprovalRequired {
		t.Fatalf("the loaded step's approval is %q", pb.Steps[1].Approval)
	}
	runs, err := playbooks.OpenRuns(filepath.Join(t.TempDir(), "runs"))
	if err != nil {
		t.Fatal(err)
	}
	return &playbooks.Engine{Actions: reg, Runs: runs}, pb, c
}

// decide answers every question with d, and counts the questions.
func decide(d playbooks.Decision, asked *int) playbooks.Approvals {
	return playbooks.ApprovalsFunc(func(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
		*asked++
		return d, nil
	})
}

func stepStatuses(run *playbooks.Run) []string {
	var out []string
	for _, s := range run.Steps {
		out = append(out, s.Name+"="+s.Status)
	}
	return out
}

func TestApprovalApproved(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	asked := 0
	e.Approvals = decide(playbooks.Decision{Verdict: playbooks.VerdictApproved, By: "alice", Via: "test"}, &asked)
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil || run.Status != playbooks.RunSucceeded {
		t.Fatalf("Start = %v, %v", run, err)
	}
	if diff := cmp.Diff(map[string]int{"isolate": 1, "revoke": 1, "after": 1}, c.get()); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	if asked != 1 {
		t.Errorf("asked %d times, want 1", asked)
	}
	loaded, err := e.Load(run.ID)
	if err != nil {
		t.Fatal(err)
	}
	d := loaded.Step("revoke").Decision
	if d == nil || d.Verdict != playbooks.VerdictApproved || d.By != "alice" || d.Via != "test" || d.At.IsZero() {
		t.Errorf("the journal's decision for revoke: %+v, want approved by alice via test, with a time", d)
	}
	if loaded.Step("revoke").Approval != playbooks.ApprovalRequired || loaded.Step("isolate").Approval != "" {
		t.Errorf("approval of the loaded steps: %q, %q", loaded.Step("revoke").Approval, loaded.Step("isolate").Approval)
	}
}

func TestApprovalDenied(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	asked := 0
	e.Approvals = decide(playbooks.Decision{Verdict: playbooks.VerdictDenied, By: "bob", Reason: "false positive"}, &asked)
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*playbooks.Run{run, mustLoad(t, e, run.ID)} {
		if r.Status != playbooks.RunDenied || !strings.Contains(r.Error, "denied by bob: false positive") {
			t.Errorf("run: %s %q, want denied by bob with the reason", r.Status, r.Error)
		}
		if diff := cmp.Diff([]string{"isolate=succeeded", "revoke=denied", "after=pending"}, stepStatuses(r)); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if d := r.Step("revoke").Decision; d == nil || d.By != "bob" || d.Reason != "false positive" {
			t.Errorf("revoke's decision: %+v", d)
		}
	}
	if diff := cmp.Diff(map[string]int{"isolate": 1}, c.get()); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	// Denied is final: a resume runs nothing.
	if _, err := e.Resume(t.Context(), run.ID, action.Env{}); !errors.Is(err, playbooks.ErrDenied) {
		t.Errorf("Resume of a denied run: %v, want ErrDenied", err)
	}
	if diff := cmp.Diff(map[string]int{"isolate": 1}, c.get()); diff != "" {
		t.Errorf("steps run after the resume (-want +got):\n%s", diff)
	}
}

// With no Approvals the run holds at the step, durably; resumed while
// still undecided it holds again; resumed once approved it runs the step,
// once, and what follows.
func TestApprovalHeldThenResumed(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Env: action.Env{Actor: "kir"}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(r *playbooks.Run, reason string) {
		t.Helper()
		if r.Status != playbooks.RunHeld || r.Held == nil || r.Held.Step != "revoke" || r.Held.Reason != reason {
			t.Fatalf("run: %s, held %+v; want held at revoke: %s", r.Status, r.Held, reason)
		}
		if diff := cmp.Diff([]string{"isolate=succeeded", "revoke=pending", "after=pending"}, stepStatuses(r)); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
	}
	check(run, playbooks.NoApprover)
	check(mustLoad(t, e, run.ID), playbooks.NoApprover)

	asked := 0
	e.Approvals = decide(playbooks.Decision{Reason: "waiting for kir runs approve"}, &asked)
	again, err := e.Resume(t.Context(), run.ID, action.Env{})
	if err != nil {
		t.Fatal(err)
	}
	check(again, "waiting for kir runs approve")
	check(mustLoad(t, e, run.ID), "waiting for kir runs approve")

	e.Approvals = decide(playbooks.Decision{Verdict: playbooks.VerdictApproved, By: "carol"}, &asked)
	done, err := e.Resume(t.Context(), run.ID, action.Env{})
	if err != nil || done.Status != playbooks.RunSucceeded || done.Held != nil {
		t.Fatalf("Resume after approval = %+v, %v", done, err)
	}
	if _, err := e.Resume(t.Context(), run.ID, action.Env{}); !errors.Is(err, playbooks.ErrFinished) {
		t.Errorf("a second resume: %v, want ErrFinished", err)
	}
	if diff := cmp.Diff(map[string]int{"isolate": 1, "revoke": 1, "after": 1}, c.get()); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	if asked != 2 {
		t.Errorf("asked %d times, want 2", asked)
	}
	loaded := mustLoad(t, e, run.ID)
	if loaded.Status != playbooks.RunSucceeded || loaded.Step("revoke").Decision.By != "carol" {
		t.Errorf("loaded: %s, decision %+v", loaded.Status, loaded.Step("revoke").Decision)
	}
}

// An Approvals that fails holds the run: a step that needs approval never
// runs unasked.
func TestApprovalErrorHolds(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	e.Approvals = playbooks.ApprovalsFunc(func(context.Context, *playbooks.Run, string) (playbooks.Decision, error) {
		return playbooks.Decision{Verdict: playbooks.VerdictApproved}, errors.New("API server unreachable")
	})
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != playbooks.RunHeld || !strings.Contains(run.Held.Reason, "API server unreachable") {
		t.Errorf("run: %s, %+v; want held with the error", run.Status, run.Held)
	}
	if c.get()["revoke"] != 0 {
		t.Error("the step ran although asking failed")
	}
}

// Approvals sees the step's resolved parameters; a step whose condition
// does not hold is skipped without asking.
func TestApprovalAskedOnlyWhenTheStepRuns(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	var params action.Params
	e.Approvals = playbooks.ApprovalsFunc(func(_ context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
		params = run.Step(step).Params
		return playbooks.Decision{Verdict: playbooks.VerdictApproved}, nil
	})
	if _, err := e.Start(t.Context(), playbooks.Request{Playbook: pb}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(action.Params{"name": "revoke"}, params); diff != "" {
		t.Errorf("params seen by Approvals (-want +got):\n%s", diff)
	}
	params = nil
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Params: map[string]any{"revoke": false}})
	if err != nil || run.Status != playbooks.RunSucceeded || params != nil {
		t.Fatalf("Start = %s, %v; asked with %v", run.Status, err, params)
	}
	if run.Step("revoke").Status != playbooks.StepSkipped || c.get()["revoke"] != 1 {
		t.Errorf("revoke: %s, run %d times", run.Step("revoke").Status, c.get()["revoke"])
	}
}

// A dry run plans the step, shows it as needing approval, and neither asks
// nor runs it.
func TestApprovalDryRun(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	e.Approvals = playbooks.ApprovalsFunc(func(context.Context, *playbooks.Run, string) (playbooks.Decision, error) {
		t.Error("a dry run asked for approval")
		return playbooks.Decision{Verdict: playbooks.VerdictApproved}, nil
	})
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Env: action.Env{DryRun: action.DryRunServer}})
	if err != nil || run.Status != playbooks.RunSucceeded {
		t.Fatalf("Start = %+v, %v", run, err)
	}
	if diff := cmp.Diff([]string{"isolate=succeeded", "revoke=needs-approval", "after=succeeded"}, stepStatuses(run)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"isolate": 1, "after": 1}, c.get()); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	if entries, _ := os.ReadDir(e.Runs.Dir()); len(entries) != 0 {
		t.Errorf("a dry run left journals: %v", entries)
	}
}

func mustLoad(t *testing.T, e *playbooks.Engine, id string) *playbooks.Run {
	t.Helper()
	r, err := e.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
