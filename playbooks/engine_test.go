package playbooks_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/journal"
	"kir.dev/kir/playbooks"
)

// markParams are the parameters of test.mark, an action that counts how
// often it ran for each key.
type markParams struct {
	Key   string   `json:"key" kir:"required"`
	Items []string `json:"items,omitempty"`
	Fail  bool     `json:"fail,omitempty"`
}

func (p markParams) Validate() error {
	if strings.Contains(p.Key, " ") {
		return errors.New("key has a space")
	}
	return nil
}

type markOutput struct {
	Key   string   `json:"key"`
	Items []string `json:"items"`
	Count int      `json:"count"`
}

// marks counts side effects by key.
type marks struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *marks) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[key]
}

func testRegistry(t *testing.T, m *marks) action.Registry {
	t.Helper()
	reg, err := action.NewRegistry(action.Func[markParams, any]{
		Name: "test.mark", Summary: "Count a mark.",
		Do: func(ctx context.Context, env action.Env, p markParams) (action.Result, error) {
			if p.Fail {
				return action.Result{}, fmt.Errorf("mark %s failed as asked", p.Key)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.n == nil {
				m.n = map[string]int{}
			}
			m.n[p.Key]++
			return action.Result{Changed: true, Output: markOutput{Key: p.Key, Items: p.Items, Count: len(p.Items)}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

const markPlaybook = `apiVersion: kir.dev/v1alpha1
kind: Playbook
metadata:
  name: marks
parameters:
  - name: prefix
    type: string
    required: true
  - name: items
    type: "[]string"
    default: [a, b]
  - name: failSecond
    type: bool
  - name: secondOnError
    type: string
    default: abort
steps:
  - name: first
    action: test.mark
    with:
      key: ${{ params.prefix }}-first
      items: ${{ params.items }}
  - name: second
    action: test.mark
    onError: continue
    with:
      key: ${{ params.prefix }}-second
      fail: ${{ params.failSecond }}
  - name: skipped
    action: test.mark
    when: steps.first.output.count > 5
    with:
      key: ${{ params.prefix }}-skipped
  - name: third
    action: test.mark
    when: steps.first.output.count == 2 && run.incident == 'inc-1'
    with:
      key: ${{ params.prefix }}-third-${{ steps.first.output.count }}
      items: ["${{ steps.first.output.key }}", "${{ run.id }}"]
`

func newEngine(t *testing.T, m *marks, dir string) (*playbooks.Engine, *playbooks.Playbook) {
	t.Helper()
	reg := testRegistry(t, m)
	pb, err := playbooks.Load("marks.yaml", []byte(markPlaybook), reg)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := playbooks.OpenRuns(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &playbooks.Engine{Actions: reg, Runs: runs, Version: "test"}, pb
}

func statuses(r *playbooks.Run) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Name+":"+s.Status)
	}
	return out
}

func TestEngineRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		params     map[string]any
		wantStatus string
		wantSteps  []string
		wantMarks  map[string]int
	}{
		{
			name:       "all steps",
			params:     map[string]any{"prefix": "p"},
			wantStatus: playbooks.RunSucceeded,
			wantSteps:  []string{"first:succeeded", "second:succeeded", "skipped:skipped", "third:succeeded"},
			wantMarks:  map[string]int{"p-first": 1, "p-second": 1, "p-skipped": 0, "p-third-2": 1},
		},
		{
			name:       "a failing step with onError continue",
			params:     map[string]any{"prefix": "p", "failSecond": true},
			wantStatus: playbooks.RunFailed, // test.mark writes nothing to a cluster
			wantSteps:  []string{"first:succeeded", "second:failed", "skipped:skipped", "third:succeeded"},
			wantMarks:  map[string]int{"p-first": 1, "p-second": 0, "p-third-2": 1},
		},
		{
			name:       "a condition that no longer holds",
			params:     map[string]any{"prefix": "p", "items": []string{"x"}},
			wantStatus: playbooks.RunSucceeded,
			wantSteps:  []string{"first:succeeded", "second:succeeded", "skipped:skipped", "third:skipped"},
			wantMarks:  map[string]int{"p-first": 1, "p-second": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &marks{}
			e, pb := newEngine(t, m, t.TempDir())
			run, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Params: tt.params, Env: action.Env{Incident: "inc-1"}})
			if err != nil {
				t.Fatal(err)
			}
			if run.Status != tt.wantStatus {
				t.Errorf("status %s, want %s (%s)", run.Status, tt.wantStatus, run.Error)
			}
			if diff := cmp.Diff(tt.wantSteps, statuses(run)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			for k, want := range tt.wantMarks {
				if got := m.count(k); got != want {
					t.Errorf("mark %s ran %d times, want %d", k, got, want)
				}
			}
			// The journal tells the same story.
			loaded, err := e.Load(run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(statuses(run), statuses(loaded)); diff != "" {
				t.Errorf("journal's steps differ (-run +journal):\n%s", diff)
			}
			if loaded.Status != run.Status {
				t.Errorf("journal's status %s, run's %s", loaded.Status, run.Status)
			}
		})
	}
}

func TestEngineParams(t *testing.T) {
	t.Parallel()
	e, pb := newEngine(t, &marks{}, t.TempDir())
	_, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Params: map[string]any{"prefx": "p", "items": "a"}})
	var pe *playbooks.ParamError
	if !errors.As(err, &pe) {
		t.Fatalf("want a *ParamError, got %v", err)
	}
	want := []string{`unknown parameter "prefx" (it takes: prefix, items, failSecond, secondOnError)`, `parameter "prefix" is required`, `parameter "items": want []string, got the string "a"`}
	if diff := cmp.Diff(want, pe.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if ids, _ := e.Runs.IDs(); len(ids) != 0 {
		t.Errorf("a run with bad parameters left journals %v", ids)
	}
}

// TestEngineResume cuts a finished run's journal after every record in
// turn — what a kill at that moment leaves — and resumes it: steps
// recorded as finished are not run again, every other step runs, and the
// run ends as the uninterrupted one did.
func TestEngineResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, pb := newEngine(t, &marks{}, dir)
	full, err := e.Start(t.Context(), playbooks.Request{Playbook: pb, Params: map[string]any{"prefix": "p"}, Env: action.Env{Incident: "inc-1"}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, full.ID+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	for k := 1; k < len(lines); k++ {
		t.Run(fmt.Sprintf("after record %d", k), func(t *testing.T) {
			t.Parallel()
			m := &marks{}
			cut := t.TempDir()
			e, _ := newEngine(t, m, cut)
			if err := os.WriteFile(filepath.Join(cut, full.ID+".jsonl"), []byte(strings.Join(lines[:k], "")), 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := e.Load(full.ID)
			if err != nil {
				t.Fatal(err)
			}
			run, err := e.Resume(t.Context(), full.ID, action.Env{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(statuses(full), statuses(run)); diff != "" {
				t.Errorf("resumed steps (-uninterrupted +resumed):\n%s", diff)
			}
			if run.Status != full.Status {
				t.Errorf("status %s, want %s", run.Status, full.Status)
			}
			for i, s := range before.Steps {
				key := map[string]string{"first": "p-first", "second": "p-second", "skipped": "p-skipped", "third": "p-third-2"}[s.Name]
				want := 1
				if s.Status == playbooks.StepSucceeded || full.Steps[i].Status == playbooks.StepSkipped {
					want = 0 // done before the cut, or never done
				}
				if got := m.count(key); got != want {
					t.Errorf("step %s (%s before the cut) ran %d times on resume, want %d", s.Name, s.Status, got, want)
				}
			}
			if got := run.Step("third").Params["items"]; !cmp.Equal(got, []any{"p-first", full.ID}) {
				t.Errorf("third step's items %v: the resumed run must see the same results and run id", got)
			}
			if run.Incident != "inc-1" {
				t.Errorf("resumed run's incident %q, want the original inc-1", run.Incident)
			}
			again, err := e.Resume(t.Context(), full.ID, action.Env{})
			if !errors.Is(err, playbooks.ErrFinished) || again.Status != playbooks.RunSucceeded {
				t.Errorf("resuming a finished run: %v, %v", again.Status, err)
			}
		})
	}
}

// TestEngineResumeLocked: a run another writer holds cannot be resumed.
func TestEngineResumeLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, _ := newEngine(t, &marks{}, dir)
	store, err := journal.Open(e.Runs.Dir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.Create("run-x")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := e.Resume(t.Context(), "run-x", action.Env{}); !errors.Is(err, playbooks.ErrRunLocked) {
		t.Errorf("want ErrLocked, got %v", err)
	}
}
