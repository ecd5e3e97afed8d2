package fence_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"kir.dev/kir/action"
	"kir.dev/kir/fence"
	"kir.dev/kir/internal/kubetest"
)

// The fence is cluster-wide, so this package's cluster (its own) has it
// installed once, from the shipped files, for every test.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) { kubetest.Main(m, &cluster, kubetest.Options{ControllerIdentities: true}) }

const (
	kirNS   = action.DefaultKirNamespace
	kirUser = "system:serviceaccount:" + kirNS + ":kir-serve"
	// probeNode is a node of no test's: waitEnforced's and kube-system's.
	probeNode = "fence-probe"
)

var (
	installOnce sync.Once
	installErr  error
)

// installed installs, once, what a site installs: kir-serve bound to the
// shipped kir-contain and kir-collect roles as the serve component binds
// them, and the admission component; and waits until the API server
// enforces the fence.
func installed(t *testing.T) {
	t.Helper()
	installOnce.Do(func() { installErr = install(context.WithoutCancel(t.Context())) })
	if installErr != nil {
		t.Fatal(installErr)
	}
}

func install(ctx context.Context) error {
	c := cluster.Client
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kirNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := c.CoreV1().ServiceAccounts(kirNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kir-serve"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := cluster.Create(ctx, "../deploy/components/rbac/rbac.yaml"); err != nil {
		return err
	}
	// serve's ClusterRoleBindings (its Role is namespaced by kustomize).
	raw, err := os.ReadFile("../deploy/components/serve/rbac.yaml")
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var b rbacv1.ClusterRoleBinding
		if err := yaml.Unmarshal([]byte(doc), &b); err != nil || b.Kind != "ClusterRoleBinding" {
			continue
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	if err := releaseMarks(ctx); err != nil {
		return err
	}
	if err := cluster.Create(ctx, "../deploy/components/admission/fence.yaml"); err != nil {
		return err
	}
	return waitEnforced(ctx)
}

// releaseMarks lets kir-serve and the responders write release marks
// (Leases in kir's namespace, contain.ReleasingLease) as the Role
// kir-release of the tamper guard's component will.
func releaseMarks(ctx context.Context) error {
	c := cluster.Client
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "kir-release-marks"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "patch", "delete"}},
	}}
	if _, err := c.RbacV1().Roles(kirNS).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{
			{Kind: "ServiceAccount", Name: "kir-serve", Namespace: kirNS},
			{Kind: "Group", Name: "kir:responders", APIGroup: "rbac.authorization.k8s.io"},
		},
	}
	if _, err := c.RbacV1().RoleBindings(kirNS).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// waitEnforced waits until the API server refuses kir a node label, which
// it does once it has read the policies, bindings and parameters.
func waitEnforced(ctx context.Context) error {
	kc, err := saClient(ctx, kirNS, "kir-serve")
	if err != nil {
		return err
	}
	if _, err := cluster.AddNode(ctx, probeNode); err != nil {
		return err
	}
	var last error
	err = kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		last = labelNode(ctx, kc, probeNode)
		return last != nil && strings.Contains(last.Error(), fence.PolicyKir), nil
	})
	if err != nil {
		return fmt.Errorf("the fence is not enforced (last answer: %v): %w", last, err)
	}
	return nil
}

// labelNode adds a label to node, in a dry run, as kir would write a node
// (kir-contain grants update, not patch).
func labelNode(ctx context.Context, c kubernetes.Interface, node string) error {
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	n.Labels["node-role.kubernetes.io/control-plane"] = ""
	_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

func saClient(ctx context.Context, ns, name string) (kubernetes.Interface, error) {
	cfg, err := cluster.ServiceAccountConfig(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// impersonate is a client acting as user in groups.
func impersonate(t *testing.T, user string, groups ...string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return kubernetes.NewForConfigOrDie(cfg)
}

// kirEnv is an action environment acting as kir-serve.
func kirEnv(t *testing.T) action.Env {
	t.Helper()
	kc, err := saClient(t.Context(), kirNS, "kir-serve")
	if err != nil {
		t.Fatal(err)
	}
	return action.Env{Kube: kc, Incident: "fence-test", Actor: kirUser, KirNamespace: kirNS}
}

// attacker is a ServiceAccount of ns that may patch pods (and their
// status) and delete NetworkPolicies there: a workload's stolen token.
func attacker(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx, c := t.Context(), cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "attacker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "attacker"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}, Verbs: []string{"get", "patch", "update", "delete"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "patch", "update", "delete"}},
	}}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "attacker"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "attacker"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "attacker", Namespace: ns}},
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := saClient(ctx, ns, "attacker")
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// refusedBy fails the test unless err is a 403 naming the policy, with
// the policy's own message (not a CEL error turned into a refusal).
func refusedBy(t *testing.T, what string, err error, policy string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: allowed, want refused by %s", what, policy)
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		t.Errorf("%s: %v, want 403 by %s", what, err, policy)
	case !strings.Contains(err.Error(), policy):
		t.Errorf("%s: %v, want the 403 to name %s", what, err, policy)
	case strings.Contains(err.Error(), "cost") || strings.Contains(err.Error(), "expression"):
		t.Errorf("%s: refused by an evaluation error, not by the policy: %v", what, err)
	}
}
