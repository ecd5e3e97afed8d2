package playbooks_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
)

type pickParams struct {
	Namespace action.Namespace `json:"namespace" kir:"required"`
	Name      action.PodName   `json:"name,omitempty"`
	Selector  action.Selector  `json:"selector,omitempty"`
}

func (pickParams) Validate() error { return nil }

// pickPlaybook feeds values that come from an alert (string parameters)
// into typed action parameters: only the run can check them.
const pickPlaybook = `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: pick
parameters:
  - name: namespace
    type: string
  - name: pod
    type: string
  - name: app
    type: string
steps:
  - name: isolate
    action: test.pick
    with:
      namespace: ${{ params.namespace }}
      name: ${{ params.pod }}
      selector: "${{ params.app == '' ? '' : 'app=' + params.app }}"
`

// TestTypedParamsCheckedWhenTheStepRuns runs a playbook whose typed
// parameters get their values from expressions: a bad value fails the
// step before its action runs, naming the step, the parameter and the
// value.
func TestTypedParamsCheckedWhenTheStepRuns(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	reg, err := action.NewRegistry(action.Func[pickParams, any]{
		Name: "test.pick", Summary: "Pick pods.",
		Do: func(context.Context, action.Env, pickParams) (action.Result, error) {
			ran.Add(1)
			return action.Result{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := playbooks.Load("pick.yaml", []byte(pickPlaybook), reg)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := playbooks.OpenRuns(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &playbooks.Engine{Actions: reg, Runs: runs, Version: "test"}
	tests := []struct {
		name   string
		params map[string]any
		want   string // in the step's error; "" for success
	}{
		{"good", map[string]any{"namespace": "shop", "pod": "web-1"}, ""},
		{"good selector", map[string]any{"namespace": "shop", "app": "web"}, ""},
		{"blank pod name", map[string]any{"namespace": "shop", "pod": " "}, `step isolate: parameter "name": " " is not a pod name`},
		{"namespace with a space", map[string]any{"namespace": "kube system", "pod": "web-1"}, `step isolate: parameter "namespace": "kube system" is not a namespace`},
		{"selector spliced from an alert", map[string]any{"namespace": "shop", "app": "web,x in (a"}, `step isolate: parameter "selector": "app=web,x in (a" is not a label selector`},
	}
	for _, tt := range tests {
		before := ran.Load()
		run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Params: tt.params})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		step := run.Steps[0]
		if tt.want == "" {
			if run.Status != playbooks.RunSucceeded || ran.Load() != before+1 {
				t.Errorf("%s: run %s (%s), action ran %d times", tt.name, run.Status, run.Error, ran.Load()-before)
			}
			continue
		}
		if run.Status != playbooks.RunFailed || step.Status != playbooks.StepFailed || !strings.Contains(step.Error, tt.want) {
			t.Errorf("%s: run %s, step %s: %q, want a failed step with %q", tt.name, run.Status, step.Status, step.Error, tt.want)
		}
		if ran.Load() != before {
			t.Errorf("%s: the action ran with a bad parameter", tt.name)
		}
	}
}

// TestPlaybookParamTypes checks that Bind holds a playbook's typed
// parameters to their types: a command's flag or a routed alert field
// that is no name is refused before any run starts.
func TestPlaybookParamTypes(t *testing.T) {
	t.Parallel()
	lib, err := playbooks.NewLibrary(kirActions(t), playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := lib.Get("contain-pod")
	for _, tt := range []struct {
		given map[string]any
		want  string
	}{
		{map[string]any{"namespace": "shop", "selector": " "}, `parameter "selector": " " is not a label selector: it is empty`},
		{map[string]any{"namespace": "shop", "name": "../etc"}, `parameter "name": "../etc" is not a pod name`},
		{map[string]any{"namespace": "Shop", "name": "web-1"}, `parameter "namespace": "Shop" is not a namespace`},
	} {
		_, err := playbooks.Bind(e.Playbook, tt.given)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Bind(%v) = %v, want %q", tt.given, err, tt.want)
		}
	}
	if _, err := playbooks.Bind(e.Playbook, map[string]any{"namespace": "shop", "selector": "app=web"}); err != nil {
		t.Errorf("good values: %v", err)
	}
}

// TestStringParamsFeedTypedOnes loads playbooks whose untyped parameters
// feed typed action parameters: strings and lists of strings may (their
// values are checked when the step runs); other types may not.
func TestStringParamsFeedTypedOnes(t *testing.T) {
	t.Parallel()
	const src = `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: feed
parameters:
  - name: ns
    type: %s
  - name: pods
    type: "[]string"
steps:
  - name: rotate
    action: rotate.pod-credentials
    with:
      namespace: ${{ params.ns }}
      pods: ${{ params.pods }}
      rotation: ${{ run.id }}
`
	reg := kirActions(t)
	for _, typ := range []string{"string", "namespace"} {
		if _, err := playbooks.Load("feed.yaml", []byte(strings.Replace(src, "%s", typ, 1)), reg); err != nil {
			t.Errorf("a %s parameter feeding a namespace: %v", typ, err)
		}
	}
	_, err := playbooks.Load("feed.yaml", []byte(strings.Replace(src, "%s", "bool", 1)), reg)
	if err == nil || !strings.Contains(err.Error(), `parameter "namespace" wants namespace, but playbook parameter "ns" has type bool`) {
		t.Errorf("a bool feeding a namespace: %v", err)
	}
}
