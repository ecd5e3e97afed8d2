package tamper_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/tamper"
)

// TestMissingNamesWhatTheGuardMayNotDo: as admin nothing is missing; as a
// ServiceAccount that may list pods and NetworkPolicies but not watch
// them, nor write Leases in kir's namespace, Missing names each.
func TestMissingNamesWhatTheGuardMayNotDo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	if p, err := tamper.Missing(ctx, tamper.Options{Kube: cluster.Client, Namespace: kir.Namespace}); err != nil || p != "" {
		t.Fatalf("as admin: %q, %v", p, err)
	}
	c := cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(kir.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "lister"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "tamper-lister-"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	}}
	role, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{}) })
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lister"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "lister", Namespace: kir.Namespace}}}
	if _, err := c.RbacV1().RoleBindings(kir.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountConfig(ctx, kir.Namespace, "lister")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tamper.Missing(ctx, tamper.Options{Kube: kc, Namespace: kir.Namespace, Watch: kir.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"watch pods in namespace " + kir.Namespace, "watch networkpolicies", "create leases in namespace " + kir.Namespace} {
		if !strings.Contains(p, want) {
			t.Errorf("Missing says %q; want it to name %q", p, want)
		}
	}
	if strings.Contains(p, "list pods") || strings.Contains(p, "create events") {
		t.Errorf("Missing names what the ServiceAccount may do: %q", p)
	}
}
