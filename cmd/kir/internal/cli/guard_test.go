package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/evidence"
	"kir.dev/kir/guard"
	"kir.dev/kir/internal/kubetest"
)

// TestCLIGuard: kir refuses, with exit code refused and nothing changed,
// to contain a pod of kir's own namespace, of kube-system, or of the
// protect list (a selector matching one), and the node of kir's pods, dry
// runs included; with --force it acts, and the override is in the run's
// journal, its warnings and its evidence's custody log.
func TestCLIGuard(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ctx := t.Context()
	own := c.NewFixture(t, "cli-kir", 1) // kir's namespace, with a replica of kir's
	app := newFixture(t, 2)
	protected := app.Pods[0]
	if _, err := c.Client.CoreV1().Pods(app.Namespace).Patch(ctx, protected.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"payments"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps(own.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: guard.ConfigMap},
		Data:       map[string]string{guard.KeyPodSelectors: "tier=payments\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kirNS := "--kir-namespace=" + own.Namespace
	state := t.TempDir()
	k := kubetest.Kir{Kubeconfig: c.Kubeconfig, StateDir: state}

	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"kir's own pod, dry run", []string{"contain", "pod", own.Pods[0].Name, "-n", own.Namespace, "--dry-run=client"}, "pod " + own.Namespace + "/" + own.Pods[0].Name + " (" + guard.RuleKir},
		{"kube-system", []string{"contain", "pod", "coredns-7db6d8ff4d-x2x9q", "-n", "kube-system"}, guard.RuleKubeSystem},
		{"a selector matching a listed pod", []string{"contain", "pod", "-l", "app=web", "-n", app.Namespace, "--no-evidence"}, "pod " + app.Namespace + "/" + protected.Name + " (" + guard.RulePodSelector + ": tier=payments)"},
		{"the node of kir's pod", []string{"contain", "node", own.Node}, "node " + own.Node + " (" + guard.RuleNodeOfKir},
		{"playbook run", []string{"playbook", "run", "contain-pod", "--set", "namespace=kube-system", "--set", "name=x", "--dry-run=server"}, guard.RuleKubeSystem},
	} {
		r := k.Run(t, append(tc.args, kirNS)...)
		if r.Code != cli.ExitRefused || !strings.Contains(r.Stderr, tc.want) || !strings.Contains(r.Stderr, "--force") {
			t.Errorf("%s: exit %d, stderr %q; want %d naming %q and --force", tc.name, r.Code, r.Stderr, cli.ExitRefused, tc.want)
		}
	}
	// kir falco replay refuses as kir serve would, dry run or not.
	raw, err := os.ReadFile("../../../../testdata/falco/sidekick-drop-execute.json")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	a["output_fields"].(map[string]any)["k8s.ns.name"] = own.Namespace
	a["output_fields"].(map[string]any)["k8s.pod.name"] = own.Pods[0].Name
	alertFile := filepath.Join(t.TempDir(), "alert.json")
	if b, err := json.Marshal(a); err != nil || os.WriteFile(alertFile, b, 0o600) != nil {
		t.Fatal(err)
	}
	if r := k.Run(t, "falco", "replay", alertFile, "--dry-run=client", kirNS); r.Code != cli.ExitRefused || !strings.Contains(r.Stderr, guard.RuleKir) {
		t.Errorf("falco replay: exit %d, stderr %q; want %d naming %q", r.Code, r.Stderr, cli.ExitRefused, guard.RuleKir)
	}
	// Nothing changed, and nothing was journaled.
	for _, p := range append(app.Pods, own.Pods...) {
		got, err := c.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := got.Labels[action.LabelQuarantine]; ok {
			t.Errorf("refused, yet pod %s/%s is labelled %s", p.Namespace, p.Name, v)
		}
	}
	if n := own.GetNode(t); n.Spec.Unschedulable {
		t.Errorf("refused, yet node %s is cordoned", own.Node)
	}
	if runs, _ := filepath.Glob(filepath.Join(state, "runs", "*.jsonl")); len(runs) != 0 {
		t.Errorf("refused runs were journaled: %v", runs)
	}

	// A person forces it: the run acts and records what it overrode.
	r := k.Run(t, "contain", "pod", protected.Name, "-n", app.Namespace, kirNS, "--force", "--no-images", "-o", "json")
	if r.Code != cli.ExitOK {
		t.Fatalf("contain --force: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "forced: pod "+app.Namespace+"/"+protected.Name) {
		t.Errorf("the report does not say what was forced:\n%s", r.Stdout)
	}
	if p := app.Pod(t, protected.Name); p.Labels[action.LabelQuarantine] == "" {
		t.Error("contain --force did not isolate the protected pod")
	}
	journals, _ := filepath.Glob(filepath.Join(state, "runs", "*.jsonl"))
	if len(journals) != 1 {
		t.Fatalf("journals: %v, want the forced run's", journals)
	}
	forced := `"forced":["forced: pod ` + app.Namespace + "/" + protected.Name
	for _, file := range []string{journals[0], filepath.Join(state, "evidence", strings.TrimSuffix(filepath.Base(journals[0]), ".jsonl"), evidence.CustodyFile)} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), forced) {
			t.Errorf("%s does not record the override %s", file, forced)
		}
	}
	r = k.Run(t, "contain", "node", own.Node, kirNS, "--force-protected")
	if r.Code != cli.ExitOK || !own.GetNode(t).Spec.Unschedulable {
		t.Fatalf("contain node --force-protected: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// Undoing is never refused.
	for _, args := range [][]string{{"release", "node", own.Node}, {"release", "pod", protected.Name, "-n", app.Namespace}} {
		if r := k.Run(t, args...); r.Code != cli.ExitOK {
			t.Errorf("%s: exit %d, stderr %q", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
}
