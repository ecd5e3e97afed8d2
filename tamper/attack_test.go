package tamper_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/tamper"
)

// TestGuardRestoresLabelWhileReleaseMarked: a release that failed after
// it marked the pod (here, its mark written as release writes it, and
// nothing else) leaves the policy and the mark for ReleasingFor. The
// attacker then removes the label, which is what the policy selects the
// pod by: release deletes the policy before it touches the label, so
// that removal is not release's, and the guard restores it within the
// reaction time, not once the mark is stale minutes later; likewise an
// ingress rule added to kir's policy. A release that then runs to the
// end is not undone.
func TestGuardRestoresLabelWhileReleaseMarked(t *testing.T) {
	t.Parallel()
	kir, app, pod := quarantined(t)
	orig, err := policyOf(t.Context(), pod)
	if err != nil || orig == nil {
		t.Fatalf("kir's policy: %v", err)
	}
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	waitGuarded(t, kir.Namespace, pod)

	markReleasing(t, kir.Namespace, pod)
	time.Sleep(3 * time.Second) // a resync (2 s) sees the mark
	kc := attacker(t, app.Namespace)
	removeLabel(t, kc, pod)
	took := waitContained(t, pod, orig, reaction)
	t.Logf("label restored in %s despite the release mark", took)
	expectFinding(t, f, tamper.LabelRemoved, pod.UID, "unauthenticated")
	// Release never changes the policy: opening it is not release's either.
	open := []byte(`{"spec":{"ingress":[{}]}}`)
	if _, err := kc.NetworkingV1().NetworkPolicies(pod.Namespace).Patch(t.Context(), orig.Name, types.MergePatchType, open, metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	took = waitContained(t, pod, orig, reaction)
	t.Logf("policy spec restored in %s despite the release mark", took)
	expectFinding(t, f, tamper.PolicyChanged, pod.UID, attackerManager)

	if _, err := contain.Release(t.Context(), env(kir.Namespace), contain.ReleaseParams{Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name)}); err != nil {
		t.Fatalf("release: %v", err)
	}
	deadline := time.Now().Add(3 * reaction)
	for time.Now().Before(deadline) {
		ok, err := labelled(t.Context(), pod)
		p, perr := policyOf(t.Context(), pod)
		if err != nil || perr != nil || ok || p != nil {
			t.Fatalf("after release: labelled %v, policy %v (%v, %v)", ok, p != nil, err, perr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestGuardReportsAdmittingPolicyOnce: the attacker's allow-all policy
// is reported once, however often its annotations are rewritten (each
// report is an Event, a notification and a custody entry: a rewrite loop
// would flood them all), and again when it allows more.
func TestGuardReportsAdmittingPolicyOnce(t *testing.T) {
	t.Parallel()
	kir, app, pod := quarantined(t)
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	waitGuarded(t, kir.Namespace, pod)
	kc := attacker(t, app.Namespace)
	pols := kc.NetworkingV1().NetworkPolicies(app.Namespace)

	open := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-in"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}
	if _, err := pols.Create(t.Context(), open, metav1.CreateOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	admits := func(n int) {
		t.Helper()
		err := kubetest.Eventually(t.Context(), reaction, func(context.Context) (bool, error) {
			return len(f.of(tamper.PolicyAdmits, pod.UID)) >= n, nil
		})
		if err != nil {
			t.Fatalf("%d policy-admits findings, want %d", len(f.of(tamper.PolicyAdmits, pod.UID)), n)
		}
	}
	admits(1)
	for i := range 20 {
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"noise":"%d"}}}`, i)
		if _, err := pols.Patch(t.Context(), open.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a resync after the last write
	if n := len(f.of(tamper.PolicyAdmits, pod.UID)); n != 1 {
		t.Errorf("%d policy-admits findings after 20 rewrites of the policy's annotations, want 1", n)
	}
	// Opening egress too is new: reported.
	patch := []byte(`{"spec":{"policyTypes":["Ingress","Egress"],"egress":[{}]}}`)
	if _, err := pols.Patch(t.Context(), open.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	admits(2)
	if n := podEvents(t, pod, "QuarantineWeakened"); n != 2 {
		t.Errorf("%d QuarantineWeakened Events on the pod, want 2", n)
	}
}

// TestGuardReportsLabelThatOpensPod: the namespace already has a policy
// that admits traffic to pods labelled role=open, which the quarantined
// pod is not. The attacker writes no policy: it adds role=open to the
// pod (the fence allows any label but kir's), and NetworkPolicies being
// additive, traffic to it flows again. The guard reports that policy
// within the reaction time, from the pod's new labels.
func TestGuardReportsLabelThatOpensPod(t *testing.T) {
	t.Parallel()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	app := cluster.NewFixture(t, "tamper-app", 1)
	pod := app.Pods[0]
	existing := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-open"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "open"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(app.Namespace).Create(t.Context(), existing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	isolate(t, kir.Namespace, pod)
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	waitGuarded(t, kir.Namespace, pod)
	time.Sleep(3 * time.Second) // a resync: nothing admits the pod yet
	if got := f.of(tamper.PolicyAdmits, pod.UID); len(got) > 0 {
		t.Fatalf("reported before the label: %+v", got)
	}
	kc := attacker(t, app.Namespace)
	if _, err := kc.CoreV1().Pods(pod.Namespace).Patch(t.Context(), pod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"role":"open"}}}`), metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	err := kubetest.Eventually(t.Context(), reaction, func(context.Context) (bool, error) {
		return len(f.of(tamper.PolicyAdmits, pod.UID)) > 0, nil
	})
	if err != nil {
		t.Fatalf("the policy the new label opens was not reported within %s", reaction)
	}
	if a := f.of(tamper.PolicyAdmits, pod.UID)[0]; a.Object != "NetworkPolicy "+app.Namespace+"/allow-open" || a.Restored {
		t.Errorf("finding: %+v", a)
	}
}

// TestGuardAnnouncesAFailedRestoreOnce: under a release mark the guard
// polls the pod every second; a restore it may not make (here, a guard
// whose identity may not patch pods) is announced once per state of the
// pod and policy, not every second.
func TestGuardAnnouncesAFailedRestoreOnce(t *testing.T) {
	t.Parallel()
	kir, app, pod := quarantined(t)
	weak := weakGuardClient(t, kir.Namespace, app.Namespace)
	f := &findings{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tamper.Run(ctx, tamper.Options{
			Kube: weak, Namespace: kir.Namespace, Watch: app.Namespace, Identity: "weak", Resync: 2 * time.Second,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond, Report: f.add,
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitGuarded(t, kir.Namespace, pod)
	markReleasing(t, kir.Namespace, pod)
	time.Sleep(3 * time.Second) // a resync sees the mark
	removeLabel(t, attacker(t, app.Namespace), pod)
	err := kubetest.Eventually(t.Context(), reaction, func(context.Context) (bool, error) {
		return len(f.of(tamper.LabelRemoved, pod.UID)) > 0, nil
	})
	if err != nil {
		t.Fatalf("no label-removed finding: %+v", f.about(pod.UID))
	}
	time.Sleep(4 * time.Second)
	got := f.of(tamper.LabelRemoved, pod.UID)
	if len(got) != 1 || got[0].Restored || got[0].Error == "" {
		t.Errorf("%d label-removed findings in 4 s of polling, want 1, not restored, with its error: %+v", len(got), got)
	}
}

// markReleasing writes pod's release mark as kir release writes it.
func markReleasing(t *testing.T, kirNS string, pod corev1.Pod) {
	t.Helper()
	now := metav1.NewMicroTime(time.Now())
	mark := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: contain.ReleasingLease(pod.UID), Namespace: kirNS,
			Labels:      map[string]string{action.LabelManagedBy: action.ManagedByKir},
			Annotations: map[string]string{action.AnnotationPod: pod.Namespace + "/" + pod.Name}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("responder@example.com"), AcquireTime: &now, RenewTime: &now,
			LeaseDurationSeconds: ptr.To(int32(contain.ReleasingFor / time.Second))},
	}
	if _, err := cluster.Client.CoordinationV1().Leases(kirNS).Create(t.Context(), mark, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// weakGuardClient is a ServiceAccount of kirNS with the guard's rules,
// but no patch of pods, in namespace app.
func weakGuardClient(t *testing.T, kirNS, app string) kubernetes.Interface {
	t.Helper()
	ctx, c := t.Context(), cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(kirNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "weak-guard"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "weak-guard", Namespace: kirNS}
	for ns, rules := range map[string][]rbacv1.PolicyRule{
		kirNS: tamper.NamespaceRules(),
		app: {
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch", "create", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
		},
	} {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "weak-guard"}, Rules: rules}
		if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "weak-guard"},
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "weak-guard"}, Subjects: []rbacv1.Subject{sa}}
		if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := cluster.ServiceAccountConfig(ctx, kirNS, "weak-guard")
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestGuardIgnoresAForgedQuarantinePolicy: the attacker may create
// NetworkPolicies in its namespace, and so one labelled as kir's and
// named after a neighbour pod, exactly as kir would write it. The guard
// learns quarantines only from kir's memory in kir's namespace, so it
// neither labels nor isolates the neighbour, while it still restores a
// real quarantine in the same namespace; it reports the forgery once,
// with no incident (the forger wrote the record).
func TestGuardIgnoresAForgedQuarantinePolicy(t *testing.T) {
	t.Parallel()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	app := cluster.NewFixture(t, "tamper-app", 2)
	pod, neighbour := app.Pods[0], app.Pods[1]
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	kc := attacker(t, app.Namespace)

	forged := contain.Quarantine{Namespace: neighbour.Namespace, Name: neighbour.Name, UID: neighbour.UID,
		Record: map[string]string{action.AnnotationIncident: "inc-forged", action.AnnotationPod: neighbour.Namespace + "/" + neighbour.Name}}.Policy()
	forged.OwnerReferences = nil // an owner reference to a pod may be refused; the annotation names it too
	if _, err := kc.NetworkingV1().NetworkPolicies(app.Namespace).Create(t.Context(), forged, metav1.CreateOptions{FieldManager: attackerManager}); err != nil {
		t.Fatalf("the attacker forging kir's policy: %v", err)
	}
	if _, problems, err := contain.ReadQuarantine(forged); err != nil || len(problems) > 0 {
		t.Fatalf("the forgery is not as kir writes it: %v %v", err, problems)
	}

	// The guard is live in that namespace: a real quarantine lifted after
	// the forgery is restored.
	isolate(t, kir.Namespace, pod)
	orig, err := policyOf(t.Context(), pod)
	if err != nil || orig == nil {
		t.Fatalf("kir's policy: %v", err)
	}
	removeLabel(t, kc, pod)
	t.Logf("the real quarantine restored in %s", waitContained(t, pod, orig, reaction))
	// The forgery is reported once it stood for Options.Unremembered.
	err = kubetest.Eventually(t.Context(), 3*unremembered, func(context.Context) (bool, error) {
		return len(f.of(tamper.PolicyUnremembered, neighbour.UID)) > 0, nil
	})
	if err != nil {
		t.Errorf("the forged policy was not reported: %v", err)
	}
	time.Sleep(3 * time.Second) // and a resync (2 s), which checks every kir-labelled policy again

	if ok, err := labelled(t.Context(), neighbour); err != nil || ok {
		t.Fatalf("the guard labelled the neighbour its attacker named (%v): it is cut off", err)
	}
	got := f.about(neighbour.UID)
	if len(got) != 1 || got[0].Kind != tamper.PolicyUnremembered || got[0].Restored || got[0].Incident != "" || !strings.Contains(got[0].Manager, attackerManager) {
		t.Errorf("findings about the neighbour: %+v, want one %s, its writer's manager, no incident", got, tamper.PolicyUnremembered)
	}
	if n := podEvents(t, neighbour, "QuarantineTampered"); n != 1 {
		t.Errorf("%d QuarantineTampered Events on the neighbour, want 1", n)
	}
	if got := f.of(tamper.PolicyUnremembered, pod.UID); len(got) > 0 {
		t.Errorf("the real quarantine, remembered, reported as unremembered: %+v", got)
	}
	if _, err := cluster.Client.CoordinationV1().Leases(kir.Namespace).Get(t.Context(), tamper.MemoryName(neighbour.UID), metav1.GetOptions{}); err == nil {
		t.Error("the guard remembered the forged quarantine")
	}
}

// TestGuardIgnoresAPolicyNamedAfterAPodOfAnotherNamespace: the quarantined
// pod's label says its UID; an attacker who may write policies in another
// namespace names one after it there, and deletes it, in a loop. Those are
// not the pod's quarantine: no finding about it, and its policy is
// untouched. Not parallel: its guard watches the whole cluster, as kir
// serve's does, and would report the other tests' quarantines.
func TestGuardIgnoresAPolicyNamedAfterAPodOfAnotherNamespace(t *testing.T) {
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	app := cluster.NewFixture(t, "tamper-app", 1)
	other := cluster.NewFixture(t, "tamper-other", 0)
	pod := app.Pods[0]
	f := &findings{}
	defer startGuard(t, kir.Namespace, "", "guard", f)()
	isolate(t, kir.Namespace, pod)
	waitGuarded(t, kir.Namespace, pod)
	orig, err := policyOf(t.Context(), pod)
	if err != nil || orig == nil {
		t.Fatalf("kir's policy: %v", err)
	}
	kc := attacker(t, other.Namespace)
	for range 3 {
		forged := orig.DeepCopy()
		forged.ObjectMeta = metav1.ObjectMeta{Name: orig.Name, Labels: orig.Labels, Annotations: orig.Annotations}
		if _, err := kc.NetworkingV1().NetworkPolicies(other.Namespace).Create(t.Context(), forged, metav1.CreateOptions{FieldManager: attackerManager}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if err := kc.NetworkingV1().NetworkPolicies(other.Namespace).Delete(t.Context(), orig.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a resync
	for _, x := range f.about(pod.UID) {
		if x.Kind != tamper.PolicyUnremembered {
			t.Errorf("finding about the quarantined pod from policies in another namespace: %+v", x)
		}
	}
	if n := podEvents(t, pod, "QuarantineTampered"); n != 0 {
		t.Errorf("%d QuarantineTampered Events on the quarantined pod", n)
	}
	now, err := policyOf(t.Context(), pod)
	if err != nil || now == nil || now.ResourceVersion != orig.ResourceVersion {
		t.Errorf("the pod's own policy was rewritten (%v)", err)
	}
}

// TestGuardRestoresThePolicysLabelsAndOwner: stripping kir's policy of
// its labels but kir's and of its owner reference leaves it as tight, but
// the node agent finds kir's policies by those labels, and the owner
// reference takes the policy with the pod: both are put back.
func TestGuardRestoresThePolicysLabelsAndOwner(t *testing.T) {
	t.Parallel()
	kir, app, pod := quarantined(t)
	orig, err := policyOf(t.Context(), pod)
	if err != nil || orig == nil {
		t.Fatalf("kir's policy: %v", err)
	}
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	waitGuarded(t, kir.Namespace, pod)
	kc := attacker(t, app.Namespace)
	var strip []map[string]any
	for k := range orig.Labels {
		if k != action.LabelManagedBy {
			strip = append(strip, map[string]any{"op": "remove", "path": "/metadata/labels/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)})
		}
	}
	strip = append(strip, map[string]any{"op": "remove", "path": "/metadata/ownerReferences"})
	patch, err := json.Marshal(strip)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.NetworkingV1().NetworkPolicies(pod.Namespace).Patch(t.Context(), orig.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = kubetest.Eventually(t.Context(), reaction, func(ctx context.Context) (bool, error) {
		p, err := policyOf(ctx, pod)
		if err != nil || p == nil {
			return false, err
		}
		q, _, err := contain.ReadQuarantine(p)
		return err == nil && len(q.MetaDrift(p)) == 0, nil
	})
	if err != nil {
		t.Fatalf("the policy's labels and owner reference were not restored within %s: %v", reaction, err)
	}
	t.Logf("labels and owner reference restored in %s", time.Since(start))
	expectFinding(t, f, tamper.PolicyChanged, pod.UID, "unauthenticated")
}
