package cli_test

import (
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"kir.dev/kir/internal/kubetest"
)

// kir rotate kubeconfig stores a kubeconfig in Vault that works against
// the API server as the ServiceAccount, prints none of it, and a second
// rotation writes a new version that rollback can undo.
func TestRotateKubeconfigToVault(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	v, vc := vaultServer(t)
	ctx := t.Context()
	ns := newFixture(t, 0).Namespace
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	args := []string{"rotate", "kubeconfig", "--for", ns + "/deployer", "--store", "vault://secret/kube/" + ns,
		"--ttl", "1h", "--kubeconfig", c.Kubeconfig, "--state-dir", state}
	first := kubetest.Kir{Env: v.Env()}.MustRun(t, args...)
	ver, data := vaultData(t, vc, "secret", "kube/"+ns)
	if ver != 1 {
		t.Fatalf("Vault holds version %d, want 1", ver)
	}
	kubeconfig, _ := data["kubeconfig"].(string)
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		t.Fatalf("the stored kubeconfig does not load: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	who, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the stored kubeconfig does not authenticate: %v", err)
	}
	if want := "system:serviceaccount:" + ns + ":deployer"; who.Status.UserInfo.Username != want {
		t.Errorf("the stored kubeconfig authenticates as %q, want %q", who.Status.UserInfo.Username, want)
	}
	second := kubetest.Kir{Env: v.Env()}.MustRun(t, args...)
	if ver, _ = vaultData(t, vc, "secret", "kube/"+ns); ver != 2 {
		t.Fatalf("the second rotation left version %d, want 2", ver)
	}
	var ids []string
	for _, r := range strings.Fields(kubetest.Kir{Env: v.Env()}.MustRun(t, "rotate", "status", "--state-dir", state).Stdout) {
		if strings.HasPrefix(r, "run-") {
			ids = append(ids, r)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("rotate status lists %d rotations, want 2", len(ids))
	}
	back := kubetest.Kir{Env: v.Env()}.MustRun(t, "rotate", "rollback", ids[0], "--state-dir", state) // newest first
	if _, data = vaultData(t, vc, "secret", "kube/"+ns); data["kubeconfig"] != kubeconfig {
		t.Error("rollback did not restore the first kubeconfig")
	}
	token := cfg.BearerToken
	if token == "" {
		t.Fatal("the kubeconfig holds no token")
	}
	noLeak(t, []string{token}, []kubetest.Result{first, second, back}, state)
}
