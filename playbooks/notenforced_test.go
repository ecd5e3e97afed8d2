package playbooks_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

type outcomeParams struct {
	// Fail is "", "not-enforced" or "other".
	Fail string `json:"fail,omitempty"`
}

func (outcomeParams) Validate() error { return nil }

const outcomePlaybook = `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: outcomes
parameters:
  - name: confirm
    type: string
  - name: after
    type: string
steps:
  - name: isolate
    action: test.write
  - name: confirm
    action: test.write
    onError: continue
    with:
      fail: ${{ params.confirm }}
  - name: after
    action: test.write
    with:
      fail: ${{ params.after }}
`

// TestRunNotEnforced: a run whose only failures are isolations the node
// did not enforce ends not-enforced, in this process and as its journal
// reads back; any other failure beside it makes it partial as before.
func TestRunNotEnforced(t *testing.T) {
	t.Parallel()
	reg, err := action.NewRegistry(action.Func[outcomeParams, any]{
		Name: "test.write", Summary: "Write, then fail as asked.",
		Do: func(ctx context.Context, env action.Env, p outcomeParams) (action.Result, error) {
			res := action.Result{Changed: true, Writes: []action.Write{{Verb: "apply", Kind: "NetworkPolicy", Name: "x", Done: true}}}
			switch p.Fail {
			case "not-enforced":
				return res, errors.Join(fmt.Errorf("pod a/b: %w: still reaches the kubelet", action.ErrNotEnforced), fmt.Errorf("pod a/c: %w", action.ErrNotEnforced))
			case "other":
				return res, errors.New("the API server said no")
			}
			return res, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := playbooks.Load("outcomes.yaml", []byte(outcomePlaybook), reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		confirm, after, want string
	}{
		{"", "", playbooks.RunSucceeded},
		{"not-enforced", "", playbooks.RunNotEnforced},
		{"not-enforced", "other", playbooks.RunPartial},
		{"other", "", playbooks.RunPartial},
	} {
		t.Run(tt.want+"/"+tt.confirm+"/"+tt.after, func(t *testing.T) {
			t.Parallel()
			runs, err := playbooks.OpenRuns(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			e := &playbooks.Engine{Actions: reg, Runs: runs, Version: "test"}
			run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Params: map[string]any{"confirm": tt.confirm, "after": tt.after}, Env: action.Env{Incident: "inc-1"}})
			if err != nil {
				t.Fatal(err)
			}
			if run.Status != tt.want {
				t.Errorf("status %q, want %q (error %q)", run.Status, tt.want, run.Error)
			}
			if tt.want == playbooks.RunNotEnforced && !errors.Is(run.Err(), action.ErrNotEnforced) {
				t.Errorf("run error %v does not wrap ErrNotEnforced", run.Err())
			}
			loaded, err := e.Load(run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.Status != tt.want {
				t.Errorf("status read back from the journal %q, want %q", loaded.Status, tt.want)
			}
		})
	}
}
