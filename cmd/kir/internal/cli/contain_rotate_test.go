package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/playbooks"
)

// kir contain pod --rotate-secrets: once the pod is isolated, the Vault
// secret its Vault Agent annotation names gets a new version; revoking its
// ServiceAccount's tokens, which cannot be undone, waits for approval:
// with no terminal and no --yes, the run ends held (exit 12) with the
// evidence sealed and the token still valid, and the report names the
// command that approves it. kir runs resume --yes approves it as the
// person at the terminal (recorded in the journal) and revokes the
// tokens, once. The pod stays alive, no value is printed, journaled or
// put in the evidence, and kir rotate rollback on the containment's run
// restores the secret.
func TestContainRotatesSecrets(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	v, vc := vaultServer(t)
	ctx := t.Context()
	f := newFixture(t, 0)
	ns, nodeName := f.Namespace, f.Node
	const planted = "PLANTED-pod-db-password"
	path := "pods/" + ns
	if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"password": planted}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secs := int64(3600)
	old, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "web", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{
			"vault.hashicorp.com/agent-inject":           "true",
			"vault.hashicorp.com/agent-inject-secret-db": "secret/data/" + path,
		}},
		Spec: corev1.PodSpec{NodeName: nodeName, ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}},
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.WaitPods(t, "app=web", 1)
	state := t.TempDir()
	r := kubetest.Kir{Env: v.Env()}.Run(t, "contain", "pod", "web-0", "-n", ns, "--rotate-secrets", "--no-images",
		"--kubeconfig", c.Kubeconfig, "--state-dir", state, "-o", "json")
	report := heldReport(t, r)
	if diff := cmp.Diff(map[string]string{"rotate": "succeeded", "collect": "succeeded", "seal": "succeeded", "revoke": "pending"},
		report.statuses("rotate", "collect", "seal", "revoke")); diff != "" {
		t.Errorf("steps of the held run (-want +got):\n%s", diff)
	}
	if ok, _ := review(t, c, old.Status.Token); !ok {
		t.Error("the ServiceAccount's token was revoked before anyone approved it")
	}
	ver, data := vaultData(t, vc, "secret", path)
	if ver != 2 || data["password"] == planted || !generated.MatchString(fmt.Sprint(data["password"])) {
		t.Fatalf("the pod's Vault secret was not rotated: version %d", ver)
	}
	newValue := data["password"].(string)
	approved := kubetest.Kir{Env: v.Env()}.MustRun(t, "runs", "resume", report.Run, "--yes", "--kubeconfig", c.Kubeconfig, "--state-dir", state, "-o", "json")
	var done struct {
		Status string `json:"status"`
		Steps  []struct {
			Name     string              `json:"name"`
			Status   string              `json:"status"`
			Decision *playbooks.Decision `json:"decision"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(approved.Stdout), &done); err != nil {
		t.Fatal(err)
	}
	last := done.Steps[len(done.Steps)-1]
	if done.Status != playbooks.RunSucceeded || last.Name != "revoke" || last.Status != playbooks.StepSucceeded || last.Decision == nil ||
		last.Decision.Via != "cli --yes" || !strings.HasPrefix(last.Decision.By, "kubetest-admin (OS user ") {
		t.Errorf("the approved run: %s, revoke %s, decision %+v; want succeeded, approved by the API identity and the OS user via cli --yes", done.Status, last.Status, last.Decision)
	}
	waitRejected(t, c, "a token of the pod's ServiceAccount issued before containment", old.Status.Token)
	if ver, _ := vaultData(t, vc, "secret", path); ver != 2 {
		t.Errorf("approving the revocation rotated the Vault secret again: version %d", ver)
	}
	p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil || p.Labels["kir.dev/quarantine"] == "" {
		t.Fatalf("the quarantined pod is not alive and contained: %v", err)
	}
	// The evidence bundle holds the run's journal, rotation records
	// included: noLeak below searches it with the rest of the state.
	journal, err := os.ReadFile(filepath.Join(state, "evidence", report.Run, "run", "journal.jsonl"))
	if err != nil || !strings.Contains(string(journal), "rotate.pod-credentials") {
		t.Fatalf("the evidence bundle holds no journal of the rotation: %v", err)
	}
	back := kubetest.Kir{Env: v.Env()}.MustRun(t, "rotate", "rollback", report.Run, "--state-dir", state)
	if ver, data = vaultData(t, vc, "secret", path); ver != 3 || data["password"] != planted {
		t.Errorf("rollback of the containment's rotation: version %d, restored %t", ver, data["password"] == planted)
	}
	noLeak(t, []string{planted, newValue, old.Status.Token}, []kubetest.Result{r, approved, back}, state)
}

// heldRun is the report of a run held before a step that needs approval.
type heldRun struct {
	Run    string          `json:"run"`
	Status string          `json:"status"`
	Held   *playbooks.Held `json:"held"`
	Steps  []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"steps"`
}

func (h heldRun) statuses(names ...string) map[string]string {
	out := map[string]string{}
	for _, s := range h.Steps {
		if slices.Contains(names, s.Name) {
			out[s.Name] = s.Status
		}
	}
	return out
}

// heldReport checks that r is a run held before its revoke step, with
// the exit code for it and the command that approves it on stderr.
func heldReport(t *testing.T, r kubetest.Result) heldRun {
	t.Helper()
	var h heldRun
	if err := json.Unmarshal([]byte(r.Stdout), &h); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, r.Stdout, r.Stderr)
	}
	if r.Code != cli.ExitHeld || h.Status != playbooks.RunHeld || h.Held == nil || h.Held.Step != "revoke" {
		t.Fatalf("exit %d, status %s, held %+v; want %d, held at revoke\nstderr:\n%s", r.Code, h.Status, h.Held, cli.ExitHeld, r.Stderr)
	}
	if want := "kir runs approve " + h.Run + " --step revoke"; !strings.Contains(r.Stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.Stderr)
	}
	return h
}
