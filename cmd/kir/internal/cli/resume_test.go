package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/playbooks"
)

// containedState is what a contain-pod run leaves on the cluster, with
// names and times made comparable across fixtures: the pod's kir labels
// and annotations, its policy, its node's cordon and taint, and how many
// Events kir emitted on each (each side effect must happen once).
func containedState(t *testing.T, f *kubetest.Fixture, pod string) string {
	t.Helper()
	ctx := t.Context()
	c := cluster(t)
	p, err := c.Client.CoreV1().Pods(f.Namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	value := action.QuarantineValue(p.UID)
	for k, v := range p.Labels {
		if strings.HasPrefix(k, "kir.dev/") {
			lines = append(lines, fmt.Sprintf("pod label %s=%s", k, strings.ReplaceAll(v, value, "<uid>")))
		}
	}
	for k, v := range p.Annotations {
		switch k {
		case action.AnnotationContainedAt:
			v = "<time>"
		case action.AnnotationPolicy:
			v = strings.ReplaceAll(v, value, "<uid>")
		case action.AnnotationPriorLabels:
			v = strings.ReplaceAll(v, p.Labels["pod-template-hash"], "<hash>")
		}
		if strings.HasPrefix(k, "kir.dev/") {
			lines = append(lines, fmt.Sprintf("pod annotation %s=%s", k, v))
		}
	}
	pol, err := c.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(ctx, action.PolicyName(value), metav1.GetOptions{})
	if err != nil {
		lines = append(lines, "policy: "+err.Error())
	} else {
		spec, _ := json.Marshal(pol.Spec)
		lines = append(lines, "policy spec "+strings.ReplaceAll(string(spec), value, "<uid>"))
	}
	n, err := c.Client.CoreV1().Nodes().Get(ctx, f.Node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf("node unschedulable=%v", n.Spec.Unschedulable))
	for _, taint := range n.Spec.Taints {
		lines = append(lines, fmt.Sprintf("node taint %s:%s", taint.Key, taint.Effect))
	}
	for k, v := range n.Annotations {
		if k == action.AnnotationContainedAt {
			v = "<time>"
		}
		if strings.HasPrefix(k, "kir.dev/") {
			lines = append(lines, fmt.Sprintf("node annotation %s=%s", k, v))
		}
	}
	events, err := c.Client.CoreV1().Events(f.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Source.Component == "kir" {
			lines = append(lines, fmt.Sprintf("event on %s: %s", e.InvolvedObject.Kind, e.Reason))
		}
	}
	nodeEvents, err := c.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + f.Node})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range nodeEvents.Items {
		if e.Source.Component == "kir" { // not the node controller's
			lines = append(lines, fmt.Sprintf("event on %s: %s", e.InvolvedObject.Kind, e.Reason))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestKilledRunResumes proves the journal on the real control plane: a
// real kir process running contain-pod is SIGKILLed right after each
// journal record in turn; `kir runs resume` then finishes the run. The
// cluster ends exactly as after an uninterrupted run, every side effect
// (the Events kir emits once per change) happened once, and no step that
// had finished ran again.
func TestKilledRunResumes(t *testing.T) {
	t.Parallel()
	ref := newFixture(t, 2)
	kubeconfig := cluster(t).Kubeconfig
	if r := (kubetest.Kir{Kubeconfig: kubeconfig}).Run(t, "contain", "pod", ref.Pods[0].Name, "-n", ref.Namespace, "--incident", "inc-resume"); r.Code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	want := containedState(t, ref, ref.Pods[0].Name)
	for _, e := range []string{"event on Pod: Quarantined", "event on Node: Quarantined"} {
		if strings.Count(want, e) != 1 {
			t.Fatalf("an uninterrupted run must emit %q once; state:\n%s", e, want)
		}
	}

	keys := t.TempDir()
	if err := evidence.Keygen(keys, "ed25519"); err != nil {
		t.Fatal(err)
	}
	pub, err := evidence.LoadPublicKey(filepath.Join(keys, evidence.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(keys, evidence.PrivateKeyFile)

	for _, point := range []string{
		"run-started",
		"step-finished:snapshot",
		"step-started:isolate",
		"step-finished:isolate",
		"step-started:cordon",
		"step-finished:cordon",
		"step-started:collect",
		"step-finished:collect",
		"step-started:seal",
	} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2)
			state := t.TempDir()
			kir := kubetest.Kir{Kubeconfig: kubeconfig, StateDir: state}
			killed := kir
			killed.Env = []string{"KIR_TEST_KILL_AFTER=" + point}
			r := killed.Run(t, "contain", "pod", f.Pods[0].Name, "-n", f.Namespace, "--incident", "inc-resume", "--key", key)
			if r.Code != -int(syscall.SIGKILL) {
				t.Fatalf("want kir killed by SIGKILL after %s, got exit %d\n%s%s", point, r.Code, r.Stdout, r.Stderr)
			}
			run := onlyRun(t, state)
			if run.Status != playbooks.RunInterrupted {
				t.Fatalf("killed run's status %q, want interrupted", run.Status)
			}
			finishedBefore := map[string]bool{}
			for _, s := range run.Steps {
				finishedBefore[s.Name] = s.Status == playbooks.StepSucceeded
			}

			if r := kir.Run(t, "runs", "resume", run.ID); r.Code != 0 {
				t.Fatalf("resume: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
			}
			if diff := cmp.Diff(want, containedState(t, f, f.Pods[0].Name)); diff != "" {
				t.Errorf("after kill at %s and resume, the cluster differs from an uninterrupted run (-want +got):\n%s", point, diff)
			}
			resumed := onlyRun(t, state)
			if resumed.Status != playbooks.RunSucceeded || resumed.Resumes != 1 {
				t.Errorf("resumed run: status %s, resumes %d", resumed.Status, resumed.Resumes)
			}
			for _, s := range resumed.Steps {
				if (s.Name == "rotate" || s.Name == "revoke") && s.Status == playbooks.StepSkipped {
					continue // not asked: --rotate-secrets
				}
				if s.Status != playbooks.StepSucceeded {
					t.Errorf("step %s: %s", s.Name, s.Status)
				}
				if finishedBefore[s.Name] && s.Attempts != 1 {
					t.Errorf("step %s had finished before the kill but was started %d times", s.Name, s.Attempts)
				}
			}
			// The evidence: sealed, signed, whole, and the pod as it was
			// before isolation, whichever step the kill interrupted.
			bundle := filepath.Join(state, "evidence", run.ID)
			rep, err := evidence.Verify(bundle, pub)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome() != evidence.Verified {
				t.Errorf("bundle after resume: %s: %v", rep.Outcome(), rep.Problems)
			}
			raw, err := os.ReadFile(filepath.Join(bundle, collect.PodDir(f.Namespace, f.Pods[0].Name), "pod.json"))
			if err != nil {
				t.Fatal(err)
			}
			var recorded corev1.Pod
			if err := json.Unmarshal(raw, &recorded); err != nil {
				t.Fatal(err)
			}
			if _, ok := recorded.Labels[action.LabelQuarantine]; ok || recorded.UID != f.Pods[0].UID {
				t.Errorf("pod.json was recorded after isolation, not before: labels %v", recorded.Labels)
			}
			// The second pod, a sibling, is untouched.
			if got := containedState(t, f, f.Pods[1].Name); strings.Contains(got, "pod label") {
				t.Errorf("sibling pod changed:\n%s", got)
			}
		})
	}
}

// onlyRun returns the one run recorded in state.
func onlyRun(t *testing.T, state string) *playbooks.Run {
	t.Helper()
	r := kubetest.Kir{StateDir: state}.MustRun(t, "runs", "list", "-o", "json")
	var runs []*playbooks.Run
	if err := json.Unmarshal([]byte(r.Stdout), &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("want one run, got %d", len(runs))
	}
	return runs[0]
}
