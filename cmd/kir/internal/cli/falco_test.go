package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/internal/kubetest"
)

// TestFalcoReplay: kir falco replay runs what a saved alert would
// trigger in kir serve — planned with --dry-run=client, for real without.
func TestFalcoReplay(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	f := newFixture(t, 1)
	pod := f.Pods[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "alert.json")
	if err := os.WriteFile(file, alert(t, f.Namespace, pod.Name, "uuid-replay"), 0o600); err != nil {
		t.Fatal(err)
	}
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig, StateDir: t.TempDir()}

	r := kir.Run(t, "falco", "replay", file, "--dry-run=client")
	if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, "step isolate (contain.isolate-pod)") {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	policy := action.PolicyName(action.QuarantineValue(pod.UID))
	if _, err := c.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), policy, metav1.GetOptions{}); err == nil {
		t.Fatal("a dry run isolated the pod")
	}

	r = kir.Run(t, "falco", "replay", file)
	if r.Code != cli.ExitOK {
		t.Fatalf("replay: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "pod "+f.Namespace+"/"+pod.Name+": isolated") {
		t.Errorf("replay output does not say the pod was isolated:\n%s", r.Stdout)
	}
	// Stored before kir returned.
	if _, err := c.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), policy, metav1.GetOptions{}); err != nil {
		t.Errorf("pod %s/%s not isolated once kir falco replay returned: %v", f.Namespace, pod.Name, err)
	}

	low := filepath.Join(dir, "notice.json")
	if err := os.WriteFile(low, []byte(strings.Replace(string(alert(t, f.Namespace, pod.Name, "u")), `"priority":"Critical"`, `"priority":"Notice"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := kir.Run(t, "falco", "replay", low); r.Code != cli.ExitOK || !strings.Contains(r.Stdout, "no routing rule") {
		t.Errorf("Notice alert: exit %d\n%s", r.Code, r.Stdout)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"rule": 42}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := kir.Run(t, "falco", "replay", bad); r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "bad.json") {
		t.Errorf("malformed alert: exit %d %s", r.Code, r.Stderr)
	}
}

// alert is a real Falcosidekick payload (testdata/falco) about pod.
func alert(t testing.TB, ns, pod, uuid string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../../../testdata/falco/sidekick-drop-execute.json")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	a["uuid"] = uuid
	fields := a["output_fields"].(map[string]any)
	fields["k8s.ns.name"], fields["k8s.pod.name"] = ns, pod
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
