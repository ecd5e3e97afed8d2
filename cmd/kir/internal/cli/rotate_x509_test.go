package cli_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/rotate"
)

// kir rotate kubeconfig --for user:NAME says the old certificate cannot be
// revoked, moves the user's bindings to the new user whose kubeconfig it
// stores in Vault as a new version, prints no key; kir rotate status lists
// it by user; kir rotate rollback gives the bindings back and makes the
// kubeconfig stored before current again.
func TestCLIRotateX509User(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ns := newFixture(t, 0).Namespace
	user := "alice-" + ns
	alice := x509User(t, c, ns, user)
	v, vc := vaultServer(t)
	ctx := t.Context()
	path := "x509/" + ns
	if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"kubeconfig": "the kubeconfig before"}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	kir := kubetest.Kir{Env: v.Env()}
	rot := kir.MustRun(t, "rotate", "kubeconfig", "--for", "user:"+user, "--store", "vault://secret/"+path,
		"--ttl", "1h", "--kubeconfig", c.Kubeconfig, "--state-dir", state)
	if !strings.Contains(rot.Stderr, "cannot be revoked") || !strings.Contains(rot.Stderr, "system:masters") {
		t.Errorf("stderr does not say the certificate cannot be revoked:\n%s", rot.Stderr)
	}
	id := runID(t, v.Env(), state)
	newUser := rotate.X509NewUser(id, user)
	ver, data := vaultData(t, vc, "secret", path)
	if ver != 2 {
		t.Fatalf("Vault holds version %d, want 2", ver)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(data["kubeconfig"].(string)))
	if err != nil {
		t.Fatalf("the stored kubeconfig does not load: %v", err)
	}
	if len(cfg.KeyData) == 0 || len(cfg.CertData) == 0 {
		t.Fatal("the stored kubeconfig holds no client certificate and key")
	}
	stored := clientFor(t, cfg)
	who, err := stored.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the stored kubeconfig does not authenticate: %v", err)
	}
	if got := who.Status.UserInfo.Username; got != newUser {
		t.Errorf("the stored kubeconfig authenticates as %q, want %q", got, newUser)
	}
	waitPodList(t, stored, ns, false)
	waitPodList(t, alice, ns, true)

	status := kir.MustRun(t, "rotate", "status", "--state-dir", state)
	if !strings.Contains(status.Stdout, id) || !strings.Contains(status.Stdout, "user:"+user) {
		t.Errorf("rotate status does not list the rotation of user:%s:\n%s", user, status.Stdout)
	}

	back := kir.MustRun(t, "rotate", "rollback", id, "--kubeconfig", c.Kubeconfig, "--state-dir", state)
	waitPodList(t, alice, ns, false)
	waitPodList(t, stored, ns, true)
	if ver, data := vaultData(t, vc, "secret", path); ver != 3 || data["kubeconfig"] != "the kubeconfig before" {
		t.Errorf("after rollback Vault holds version %d with the kubeconfig before: %v; want version 3 with it", ver, data["kubeconfig"] == "the kubeconfig before")
	}
	// Nothing of the new key anywhere: neither a line of its PEM body nor
	// the whole as a kubeconfig's client-key-data.
	planted := []string{base64.StdEncoding.EncodeToString(cfg.KeyData)}
	for _, l := range strings.Split(string(cfg.KeyData), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			planted = append(planted, l)
		}
	}
	noLeak(t, planted, []kubetest.Result{rot, status, back}, state)
}

// x509User gives user, authenticated by a client certificate, two
// bindings as rotate kubeconfig --for user: finds them: a RoleBinding (with
// bob) to read pods in ns, a ClusterRoleBinding to get namespaces. It
// returns a client as user, once it can list the pods.
func x509User(t *testing.T, c *kubetest.Cluster, ns, user string) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	rbac := c.Client.RbacV1()
	subject := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
	}
	for name, rule := range map[string]rbacv1.PolicyRule{
		ns + "-pods":       {APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		ns + "-namespaces": {APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
	} {
		if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{rule}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "readers"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ns + "-pods"},
		Subjects:   []rbacv1.Subject{subject(user), subject("bob")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-alice"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ns + "-namespaces"},
		Subjects:   []rbacv1.Subject{subject(user)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // the test's is done
		_ = rbac.ClusterRoleBindings().Delete(ctx, ns+"-alice", metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, ns+"-pods", metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, ns+"-namespaces", metav1.DeleteOptions{})
	})
	cfg, err := c.ClientCertConfig(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	client := clientFor(t, cfg)
	waitPodList(t, client, ns, false)
	return client
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// waitPodList waits until listing the pods of ns as client succeeds, or
// is forbidden: RBAC follows its bindings through a watch, not at once.
func waitPodList(t *testing.T, client kubernetes.Interface, ns string, forbidden bool) {
	t.Helper()
	var last error
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		_, last = client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if forbidden {
			return apierrors.IsForbidden(last), nil
		}
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("listing pods in %s: got %v, want forbidden %v", ns, last, forbidden)
	}
}
