package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"kir.dev/kir/internal/kubetest"
)

// kir contain pod --rotate-secrets: once the pod is isolated, the Vault
// secret its Vault Agent annotation names gets a new version and its
// ServiceAccount's tokens are revoked; the pod stays alive, no value is
// printed, journaled or put in the evidence, and kir rotate rollback on the containment's run
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
	r := kubetest.Kir{Env: v.Env()}.MustRun(t, "contain", "pod", "web-0", "-n", ns, "--rotate-secrets", "--no-images",
		"--kubeconfig", c.Kubeconfig, "--state-dir", state, "-o", "json")
	var report struct {
		Run   string `json:"run"`
		Steps []struct {
			Name   string          `json:"name"`
			Status string          `json:"status"`
			Output json.RawMessage `json:"output"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &report); err != nil {
		t.Fatal(err)
	}
	rotated := ""
	for _, s := range report.Steps {
		if s.Name == "rotate" {
			rotated = s.Status + " " + string(s.Output)
		}
	}
	if !strings.HasPrefix(rotated, "succeeded") {
		t.Fatalf("the rotate step: %s", rotated)
	}
	ver, data := vaultData(t, vc, "secret", path)
	if ver != 2 || data["password"] == planted || !generated.MatchString(fmt.Sprint(data["password"])) {
		t.Fatalf("the pod's Vault secret was not rotated: version %d", ver)
	}
	newValue := data["password"].(string)
	waitRejected(t, c, "a token of the pod's ServiceAccount issued before containment", old.Status.Token)
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
	noLeak(t, []string{planted, newValue, old.Status.Token}, []kubetest.Result{r, back}, state)
}
