package rotate_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/rotate"
)

func TestPodParamsCredentials(t *testing.T) {
	t.Parallel()
	p := rotate.PodParams{Namespace: "ns", Pods: []action.PodName{"web"}, Rotation: "run-1"}
	for _, ok := range []string{rotate.CredentialsAll, rotate.CredentialsSecrets, rotate.CredentialsServiceAccounts} {
		p.Credentials = ok
		if err := p.Validate(); err != nil {
			t.Errorf("credentials %q: %v", ok, err)
		}
	}
	p.Credentials = "tokens"
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `credentials "tokens"`) {
		t.Errorf("credentials tokens: %v, want an error naming it", err)
	}
}

// credentials: secrets leaves the pod's ServiceAccount alone (its
// revocation is a later step that needs approval); serviceAccounts
// revokes it, and lists nothing left to rotate by hand (the secrets step
// did).
func TestPodCredentialsSplit(t *testing.T) {
	t.Parallel()
	c := controlPlane(t)
	ctx := t.Context()
	f := c.NewFixture(t, "rotate", 0)
	sa, err := c.Client.CoreV1().ServiceAccounts(f.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Pods(f.Namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web", action.LabelQuarantine: "web"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			NodeSelector:       map[string]string{"kubernetes.io/hostname": f.Node},
			Containers:         []corev1.Container{{Name: "c", Image: "registry.example/web:1"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, c, f.Namespace, "app=web", 1)
	token := requestToken(t, c, f.Namespace, "app")
	env := action.Env{Kube: c.Client, Actor: "test-admin"}
	run := func(credentials string) rotate.PodOutput {
		t.Helper()
		p := rotate.PodParams{Namespace: action.Namespace(f.Namespace), Pods: []action.PodName{"web"}, Rotation: "run-split", Credentials: credentials}
		res, err := rotate.Stores{}.RotatePodCredentials(ctx, env, p)
		if err != nil {
			t.Fatalf("credentials %s: %v", credentials, err)
		}
		return *res.Output.(*rotate.PodOutput)
	}

	out := run(rotate.CredentialsSecrets)
	if len(out.ServiceAccounts) != 0 {
		t.Errorf("credentials secrets revoked %+v", out.ServiceAccounts)
	}
	got, err := c.Client.CoreV1().ServiceAccounts(f.Namespace).Get(ctx, "app", metav1.GetOptions{})
	if err != nil || got.UID != sa.UID {
		t.Fatalf("credentials secrets recreated the ServiceAccount: %v", err)
	}
	if ok, _ := review(t, c, token); !ok {
		t.Error("credentials secrets revoked the ServiceAccount's token")
	}

	out = run(rotate.CredentialsServiceAccounts)
	if len(out.ServiceAccounts) != 1 || len(out.Left) != 0 || len(out.Secrets) != 0 {
		t.Errorf("credentials serviceAccounts: %d revoked, %d left, %d secrets; want 1, 0, 0", len(out.ServiceAccounts), len(out.Left), len(out.Secrets))
	}
	waitRejected(t, c, "a token of the pod's ServiceAccount issued before the revocation", token)
}
