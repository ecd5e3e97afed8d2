package playbooks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/playbooks"
)

func holdEngine(t *testing.T, seen map[string]bool, yaml string) (*playbooks.Engine, *playbooks.Playbook) {
	t.Helper()
	reg := lookActRegistry(t, seen)
	pb, err := playbooks.Load("hold.yaml", []byte(yaml), reg)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	runs, err := playbooks.OpenRuns(filepath.Join(state, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	return &playbooks.Engine{Actions: reg, Runs: runs, Evidence: filepath.Join(state, "evidence")}, pb
}

var errLost = errors.New("another replica holds the key")

// Hold is asked once, after the read-only steps and before the first step
// that acts. Refused, the run stops there and leaves nothing: no journal,
// no evidence bundle.
func TestHoldRefusedDiscardsTheRun(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	e, pb := holdEngine(t, seen, lookActPlaybook)
	calls := 0
	hold := func(ctx context.Context) error {
		calls++
		if _, ran := seen["snapshot"]; !ran {
			t.Error("Hold was asked before the read-only snapshot ran")
		}
		if _, ran := seen["isolate"]; ran {
			t.Error("Hold was asked after the first acting step ran")
		}
		return errLost
	}
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, ID: "run-held", Hold: hold})
	var held *playbooks.HeldError
	if !errors.As(err, &held) || !errors.Is(err, errLost) || run != nil {
		t.Fatalf("Start = %v, %v; want a *HeldError wrapping errLost and no run", run, err)
	}
	if calls != 1 {
		t.Errorf("Hold asked %d times, want 1", calls)
	}
	if diff := cmp.Diff(map[string]bool{"snapshot": false}, seen); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
	if _, err := e.Load("run-held"); !errors.Is(err, playbooks.ErrRunNotFound) {
		t.Errorf("the held run's journal: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(e.Evidence, "run-held")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the held run's evidence is still there: %v", err)
	}
}

// Granted, the run goes on as it would without a Hold.
func TestHoldGranted(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	e, pb := holdEngine(t, seen, lookActPlaybook)
	calls := 0
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Hold: func(context.Context) error { calls++; return nil }})
	if err != nil || run.Status != playbooks.RunSucceeded {
		t.Fatalf("Start = %v, %v", run, err)
	}
	if calls != 1 || len(seen) != 4 {
		t.Errorf("Hold asked %d times, steps run %v; want 1 and all four", calls, seen)
	}
	if _, err := os.Stat(filepath.Join(e.Evidence, run.ID, "pod.json")); err != nil {
		t.Errorf("the run's evidence: %v", err)
	}
}

// Only the first step runs beside Hold, read-only as it may be: a run
// whose steps all read asks Hold before its second, and a run of one step
// at its end, so that it too runs only where Hold says.
func TestHoldWithoutActingSteps(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, steps string
	}{
		{"one step", `
  - name: snapshot
    action: test.look
    with: {name: snapshot, dir: "${{ run.evidence }}"}`},
		{"two steps", `
  - name: snapshot
    action: test.look
    with: {name: snapshot, dir: "${{ run.evidence }}"}
  - name: collect
    action: test.look
    with: {name: collect}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := map[string]bool{}
			e, pb := holdEngine(t, seen, "apiVersion: kir.dev/v1alpha1\nkind: Playbook\nmetadata:\n  name: look-only\nsteps:"+tt.steps+"\n")
			_, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, ID: "look-held", Hold: func(context.Context) error { return errLost }})
			if !errors.Is(err, errLost) {
				t.Fatalf("Start: %v, want errLost", err)
			}
			if diff := cmp.Diff(map[string]bool{"snapshot": false}, seen); diff != "" {
				t.Errorf("steps run (-want +got):\n%s", diff)
			}
			if _, err := e.Load("look-held"); !errors.Is(err, playbooks.ErrRunNotFound) {
				t.Errorf("the held run's journal: %v, want ErrNotFound", err)
			}
		})
	}
}

// Discard removes a recorded run that never acted (a restart came between
// its snapshot and its Hold's answer), and refuses one that acted.
func TestDiscard(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	e, pb := holdEngine(t, seen, lookActPlaybook)
	// Killed while waiting for Hold: what is on disk then is put back after
	// the held run was discarded.
	journalFile, err := e.Runs.Path("waiting")
	if err != nil {
		t.Fatal(err)
	}
	var kept []byte
	_, err = e.Start(t.Context(), playbooks.Request{Playbook: pb, ID: "waiting", Hold: func(context.Context) error {
		kept, err = os.ReadFile(journalFile)
		if err != nil {
			t.Error(err)
		}
		return errLost
	}})
	if !errors.Is(err, errLost) {
		t.Fatal(err)
	}
	if err := os.WriteFile(journalFile, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.Evidence, "waiting"), 0o700); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Load("waiting"); err != nil || r.Status != playbooks.RunInterrupted {
		t.Fatalf("Load = %v, %v; want an interrupted run", r, err)
	}
	if err := e.Discard("waiting"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load("waiting"); !errors.Is(err, playbooks.ErrRunNotFound) {
		t.Errorf("after Discard: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(e.Evidence, "waiting")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the discarded run's evidence is still there: %v", err)
	}

	done, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, ID: "acted"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Discard(done.ID); !errors.Is(err, playbooks.ErrActed) {
		t.Errorf("Discard of a run that acted: %v, want ErrActed", err)
	}
	if _, err := e.Load(done.ID); err != nil {
		t.Errorf("a run that acted was removed: %v", err)
	}
}

// Stopped while Hold was asked, the run is interrupted before the step
// that acts: it never started, so the run can still be discarded.
func TestHoldInterrupted(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	e, pb := holdEngine(t, seen, lookActPlaybook)
	ctx, cancel := context.WithCancel(t.Context())
	run, err := e.Start(ctx, playbooks.Request{Playbook: pb, Hold: func(context.Context) error {
		cancel()
		return nil
	}})
	if err != nil || run.Status != playbooks.RunInterrupted {
		t.Fatalf("Start = %v, %v; want an interrupted run", run, err)
	}
	if _, ran := seen["isolate"]; ran {
		t.Error("the acting step ran after the run was stopped")
	}
	if err := e.Discard(run.ID); err != nil {
		t.Errorf("Discard: %v", err)
	}
}

// A crash between a run's journal being created and its start being
// recorded leaves an empty journal. That run did nothing: Load reports it
// as not found, List leaves it out, and starting the run again (as kir
// serve does when it replays the alert) takes the journal over.
func TestRunWithAnEmptyJournalStartsAgain(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	e, pb := holdEngine(t, seen, lookActPlaybook)
	if err := os.WriteFile(filepath.Join(e.Runs.Dir(), "run-crashed.jsonl"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load("run-crashed"); !errors.Is(err, playbooks.ErrRunNotFound) {
		t.Fatalf("Load of an empty journal: %v, want ErrNotFound", err)
	}
	if runs, err := e.List(); err != nil || len(runs) != 0 {
		t.Fatalf("List = %v, %v; want no runs", runs, err)
	}
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, ID: "run-crashed"})
	if err != nil || run.Status != playbooks.RunSucceeded {
		t.Fatalf("Start again = %v, %v", run, err)
	}
	loaded, err := e.Load("run-crashed")
	if err != nil || loaded.Status != playbooks.RunSucceeded || len(seen) != 4 {
		t.Fatalf("Load after = %+v, %v; steps run %v", loaded, err, seen)
	}
}
