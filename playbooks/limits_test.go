package playbooks_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

// limitOn defers step name while *over is true, and counts the questions.
func limitOn(name string, over *bool, asked *int) playbooks.Limits {
	return playbooks.LimitsFunc(func(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
		*asked++
		if step == name && *over {
			return playbooks.Decision{Verdict: playbooks.VerdictPending, Reason: "over the node budget"}, nil
		}
		return playbooks.Decision{Verdict: playbooks.VerdictApproved}, nil
	})
}

// A step over a limit is deferred: the steps after it run, the run ends
// held at it, and resuming it once under the limit runs the deferred step
// alone.
func TestLimitDefersOneStep(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	asked, over := 0, true
	e.Limits = limitOn("isolate", &over, &asked)
	e.Approvals = decide(playbooks.Decision{Verdict: playbooks.VerdictApproved, By: "alice", Via: "test"}, new(int))
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil || run.Status != playbooks.RunHeld {
		t.Fatalf("Start = %+v, %v; want a held run", run, err)
	}
	if run.Held == nil || run.Held.Step != "isolate" || run.Held.Reason != "over the node budget" {
		t.Fatalf("Held = %+v", run.Held)
	}
	if diff := cmp.Diff(map[string]int{"revoke": 1, "after": 1}, c.get()); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	loaded, err := e.Load(run.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"isolate=deferred", "revoke=succeeded", "after=succeeded"}
	if diff := cmp.Diff(want, stepStatuses(loaded)); diff != "" || loaded.Status != playbooks.RunHeld {
		t.Errorf("journal: %s, steps (-want +got):\n%s", loaded.Status, diff)
	}

	// Still over: deferred again, and nothing else runs again.
	if run, err = e.Resume(t.Context(), run.ID, action.Env{}); err != nil || run.Status != playbooks.RunHeld {
		t.Fatalf("Resume over the limit = %+v, %v", run, err)
	}
	over = false
	if run, err = e.Resume(t.Context(), run.ID, action.Env{}); err != nil || run.Status != playbooks.RunSucceeded {
		t.Fatalf("Resume under the limit = %+v, %v", run, err)
	}
	if diff := cmp.Diff(map[string]int{"isolate": 1, "revoke": 1, "after": 1}, c.get()); diff != "" {
		t.Errorf("each step runs once (-want +got):\n%s", diff)
	}
}

// A limit that cannot be read defers the step; a dry run never asks.
func TestLimitFailsClosedAndSparesDryRuns(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	asked := 0
	e.Limits = playbooks.LimitsFunc(func(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
		asked++
		return playbooks.Decision{}, errors.New("budget unreadable")
	})
	e.Approvals = decide(playbooks.Decision{Verdict: playbooks.VerdictApproved, By: "alice", Via: "test"}, new(int))
	_, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Env: action.Env{DryRun: action.DryRunServer}})
	if err != nil || asked != 0 {
		t.Fatalf("dry run: %v, asked %d times", err, asked)
	}
	planned := c.get() // a dry run's actions run, persisting nothing
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil || run.Status != playbooks.RunHeld {
		t.Fatalf("Start = %s, %v; want held", run.Status, err)
	}
	if diff := cmp.Diff(planned, c.get()); diff != "" {
		t.Errorf("steps run (-before +after):\n%s", diff)
	}
	if got := run.Steps[0]; got.Status != playbooks.StepDeferred || got.Error != "asking whether a limit defers it: budget unreadable" {
		t.Errorf("first step = %s: %s", got.Status, got.Error)
	}
}

// A person's denial of a deferred step ends the run denied on resume:
// what ran after the step stands, and the step never runs.
func TestLimitDeniedOnResume(t *testing.T) {
	t.Parallel()
	e, pb, c := approvalEngine(t)
	e.Approvals = decide(playbooks.Decision{Verdict: playbooks.VerdictApproved, By: "alice", Via: "test"}, new(int))
	verdict := playbooks.Decision{Verdict: playbooks.VerdictPending, Reason: "over"}
	e.Limits = playbooks.LimitsFunc(func(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
		if step == "isolate" {
			return verdict, nil
		}
		return playbooks.Decision{Verdict: playbooks.VerdictApproved}, nil
	})
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil || run.Status != playbooks.RunHeld {
		t.Fatalf("Start = %s, %v", run.Status, err)
	}
	verdict = playbooks.Decision{Verdict: playbooks.VerdictDenied, By: "bob", Reason: "not this node"}
	if run, err = e.Resume(t.Context(), run.ID, action.Env{}); err != nil || run.Status != playbooks.RunDenied {
		t.Fatalf("Resume = %s, %v; want denied", run.Status, err)
	}
	if diff := cmp.Diff(map[string]int{"revoke": 1, "after": 1}, c.get()); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	if _, err := e.Resume(t.Context(), run.ID, action.Env{}); !errors.Is(err, playbooks.ErrDenied) {
		t.Errorf("resuming a denied run: %v, want ErrDenied", err)
	}
}
