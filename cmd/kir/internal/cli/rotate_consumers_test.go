package cli_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"kir.dev/kir/internal/kubetest"
)

// kir rotate secret --kube-secret --restart-consumers: the Kubernetes
// Secret holding a copy of a Vault value gets the new one, the Deployment
// that reads it is restarted once — also when kir is killed after noting
// the restart time and resumed —, and the value is nowhere in kir's output
// or journal.
func TestRotateSyncsKubeSecret(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	v, vc := vaultServer(t)
	ctx := t.Context()
	f := newFixture(t, 0)
	ns := f.Namespace
	const planted = "PLANTED-kube-copy"
	path := "sync/" + ns
	if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"password": planted}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"}, Data: map[string][]byte{"password": []byte(planted)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Deploy(t, kubetest.Deployment{Name: "api", Template: func(p *corev1.PodTemplateSpec) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{
			Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}},
		}}
	}})
	state := t.TempDir()
	args := []string{"rotate", "secret", "vault://secret/" + path + "#password", "--kube-secret", ns + "/db", "--restart-consumers",
		"--kubeconfig", c.Kubeconfig, "--state-dir", state}
	killed := kubetest.Kir{Env: append(v.Env(), "KIR_TEST_KILL_AFTER=step-note:sync#1")}.Run(t, args...)
	if killed.Code != -9 {
		t.Fatalf("kir was not killed: exit %d\n%s", killed.Code, killed.Stderr)
	}
	id := runID(t, v.Env(), state)
	resumed := kubetest.Kir{Env: v.Env()}.MustRun(t, "runs", "resume", id, "--kubeconfig", c.Kubeconfig, "--state-dir", state)
	_, data := vaultData(t, vc, "secret", path)
	newValue, _ := data["password"].(string)
	sec, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if newValue == planted || string(sec.Data["password"]) != newValue {
		t.Fatalf("the Kubernetes Secret does not hold the new value")
	}
	d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]
	if at == "" || d.Generation != 2 {
		t.Fatalf("the Deployment was not restarted exactly once: restartedAt %q, generation %d", at, d.Generation)
	}
	status := kubetest.Kir{Env: v.Env()}.MustRun(t, "runs", "show", id, "--state-dir", state, "-o", "json")
	if !strings.Contains(status.Stdout, `"secret": "`+ns+`/db"`) && !strings.Contains(status.Stdout, `"secret":"`+ns+`/db"`) {
		t.Errorf("the run does not record the sync:\n%s", status.Stdout)
	}
	noLeak(t, []string{planted, newValue}, []kubetest.Result{killed, resumed, status}, state)
}
