package fence_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/fence"
	"kir.dev/kir/internal/kubetest"
)

// TestAttackerCannotForgeKirPolicies: a workload's token that may create
// NetworkPolicies in its namespace cannot forge kir's quarantine policy
// of a neighbour's pod (which the tamper guard would take for kir's, and
// label, isolate and guard that pod), and cannot delete kir's policy
// with a DELETE of the collection. Policies not named as kir's
// quarantine policies, even labelled as kir's, and policies not labelled
// as kir's (an odd casing of the value is not kir's label) stay the
// namespace's business.
func TestAttackerCannotForgeKirPolicies(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "forge", 2)
	ctx, ns := t.Context(), f.Namespace
	pod := isolate(t, kirEnv(t), ns, f.Pods[0].Name, false)
	neighbour := f.Pods[1]
	bad := forger(t, ns)
	pols := bad.NetworkingV1().NetworkPolicies(ns)

	allowAll := func(name, managedBy string, sel map[string]string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{action.LabelManagedBy: managedBy},
				Annotations: map[string]string{action.AnnotationIncident: "someone-elses-incident", action.AnnotationPod: ns + "/" + neighbour.Name}},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: sel},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{}}, Egress: []networkingv1.NetworkPolicyEgressRule{{}},
			},
		}
	}
	// The fence may be being put back by another test: wait until both
	// policies answer (dry runs: the forgery, and a delete of kir's
	// policy), at most 30 s.
	forged := allowAll(action.PolicyName(string(neighbour.UID)), action.ManagedByKir, map[string]string{"app": "web"})
	dry := []string{metav1.DryRunAll}
	_ = kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, cerr := pols.Create(ctx, forged, metav1.CreateOptions{DryRun: dry})
		derr := pols.Delete(ctx, action.PolicyName(string(pod.UID)), metav1.DeleteOptions{DryRun: dry})
		return cerr != nil && derr != nil && strings.Contains(derr.Error(), fence.PolicyPolicies), nil
	})
	_, err := pols.Create(ctx, forged, metav1.CreateOptions{})
	// Both kir-fence-policies (labelled as kir's) and kir-fence-names
	// (named as kir's) refuse it; the 403 names the first.
	policy := fence.PolicyPolicies
	if err != nil && strings.Contains(err.Error(), fence.PolicyNames) {
		policy = fence.PolicyNames
	}
	refusedBy(t, "the attacker forging kir's quarantine policy of a neighbour's pod", err, policy)
	// Labelled as kir's but not named as kir's quarantine policies: not
	// the fence's (kir serve's own ingress policy is such a one, applied
	// by whoever installs kir), nor read as kir's by the guard, which
	// reports it as any policy that admits traffic to a quarantined pod;
	// its creator may delete it.
	open := allowAll("allow-all", action.ManagedByKir, map[string]string{action.LabelQuarantine: string(pod.UID)})
	if _, err = pols.Create(ctx, open, metav1.CreateOptions{}); err != nil {
		t.Errorf("a policy labelled as kir's, not named as kir's: %v, want allowed (the fence is not RBAC)", err)
	} else if err := pols.Delete(ctx, open.Name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting it: %v", err)
	}
	err = pols.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	refusedBy(t, "the attacker deleting every policy of the namespace at once", err, fence.PolicyPolicies)
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, action.PolicyName(string(pod.UID)), metav1.GetOptions{}); err != nil {
		t.Errorf("kir's policy after the attack: %v", err)
	}

	// Not kir's label: allowed, and no quarantine of kir's to the guard.
	odd := allowAll("allow-odd", "Kir", map[string]string{"app": "web"})
	got, err := pols.Create(ctx, odd, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("a policy labelled %s=Kir: %v, want allowed (not kir's)", action.LabelManagedBy, err)
	}
	got.Name = action.PolicyName(string(neighbour.UID)) // as if it could have that name
	if _, _, err := contain.ReadQuarantine(got); err == nil {
		t.Errorf("a policy labelled %s=Kir reads as kir's quarantine", action.LabelManagedBy)
	}
	if _, err := pols.Create(ctx, allowAll("theirs", "someone", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("the namespace's own policy: %v, want allowed (the fence is not RBAC)", err)
	}
}

// forger is a ServiceAccount of ns that may create, change and delete
// NetworkPolicies there.
func forger(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx, c := t.Context(), cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "forger"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "forger"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "create", "patch", "update", "delete", "deletecollection"}},
	}}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "forger"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "forger"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "forger", Namespace: ns}},
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := saClient(ctx, ns, "forger")
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// TestAttackerCannotSquatKirsPolicyName: a workload that knows its own
// UID cannot create, before kir contains it, a policy named as kir's
// quarantine policy of it (not labelled as kir's, with an allow-all
// ingress rule): kir serve's apply would then be an update of a policy
// not kir's, which kir-fence-kir refuses. Refused by kir-fence-names; kir
// then contains the pod.
func TestAttackerCannotSquatKirsPolicyName(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "squat", 1)
	ctx, ns := t.Context(), f.Namespace
	pod := f.Pods[0]
	squat := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: action.PolicyName(string(pod.UID)), Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"nothing": "x"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}
	pols := forger(t, ns).NetworkingV1().NetworkPolicies(ns)
	var err error
	_ = kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err = pols.Create(ctx, squat, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil, nil
	})
	refusedBy(t, "the workload squatting its own quarantine policy's name (dry run)", err, fence.PolicyNames)
	_, err = pols.Create(ctx, squat, metav1.CreateOptions{})
	refusedBy(t, "the workload squatting its own quarantine policy's name", err, fence.PolicyNames)
	isolate(t, kirEnv(t), ns, pod.Name, false)
	// Another name is the namespace's business.
	squat.Name = "kir-quarantine"
	if _, err := pols.Create(ctx, squat, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a policy named %s: %v, want allowed", squat.Name, err)
	}
}
