package playbooks_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

type nameParams struct {
	Name string `json:"name" kir:"required"`
	// Dir, for test.look, is where it records what it read.
	Dir string `json:"dir,omitempty"`
}

func (nameParams) Validate() error { return nil }

// The pods a run's read-only steps read are handed to the first step that
// acts, and to no step after it: what was found is stale once something
// changed. The journal still tells the whole run, read-only starts
// included.
func TestFoundGoesToTheFirstActingStep(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{} // step name: it got the found pod
	reg := lookActRegistry(t, seen)
	pb, err := playbooks.Load("found.yaml", []byte(lookActPlaybook), reg)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := playbooks.OpenRuns(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &playbooks.Engine{Actions: reg, Runs: runs}
	run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"snapshot": false, "isolate": true, "collect": false, "cordon": false}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("steps given the found pod (-want +got):\n%s", diff)
	}
	loaded, err := e.Load(run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(statuses(run), statuses(loaded)); diff != "" || loaded.Status != playbooks.RunSucceeded {
		t.Errorf("journal: status %s, steps (-run +journal):\n%s", loaded.Status, diff)
	}
}

// lookActRegistry has test.look, a read-only action that reads (adds to
// Found) pod ns/web, and test.act, which acts; both note in seen, under
// their name parameter, whether they were given the found pod.
func lookActRegistry(t *testing.T, seen map[string]bool) action.Registry {
	t.Helper()
	var mu sync.Mutex
	reg, err := action.NewRegistry(
		action.Func[nameParams, any]{
			Name: "test.look", Summary: "Read a pod.", ReadOnly: true,
			Do: func(ctx context.Context, env action.Env, p nameParams) (action.Result, error) {
				mu.Lock()
				seen[p.Name] = env.Found.Pod("ns", "web") != nil
				mu.Unlock()
				if p.Dir != "" {
					if err := os.MkdirAll(p.Dir, 0o700); err != nil {
						return action.Result{}, err
					}
					if err := os.WriteFile(filepath.Join(p.Dir, "pod.json"), []byte("{}"), 0o600); err != nil {
						return action.Result{}, err
					}
				}
				env.Found.AddPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"}})
				return action.Result{}, nil
			},
		},
		action.Func[nameParams, any]{
			Name: "test.act", Summary: "Act on a pod.",
			Do: func(ctx context.Context, env action.Env, p nameParams) (action.Result, error) {
				mu.Lock()
				seen[p.Name] = env.Found.Pod("ns", "web") != nil
				mu.Unlock()
				return action.Result{Changed: true}, nil
			},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

const lookActPlaybook = `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: found
steps:
  - name: snapshot
    action: test.look
    with: {name: snapshot, dir: "${{ run.evidence }}"}
  - name: isolate
    action: test.act
    with: {name: isolate}
  - name: collect
    action: test.look
    with: {name: collect}
  - name: cordon
    action: test.act
    with: {name: cordon}
`
