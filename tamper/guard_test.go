package tamper_test

import (
	"context"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/tamper"
)

// TestGuardRestoresLiftedQuarantines: two guards (one leads); the pod's
// own namespace's attacker removes the label, deletes kir's policy, opens
// it with an ingress rule, removes label and policy both, and adds an
// allow-all policy. Each lift is undone within the reaction time, once
// (one guard acts), with a finding naming the client-reported manager;
// the allow-all policy is reported and left in place.
func TestGuardRestoresLiftedQuarantines(t *testing.T) {
	t.Parallel()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	app := cluster.NewFixture(t, "tamper-app", 2)
	pod, other := app.Pods[0], app.Pods[1]
	isolate(t, kir.Namespace, pod)
	orig, err := policyOf(t.Context(), pod)
	if err != nil || orig == nil {
		t.Fatalf("kir's policy: %v", err)
	}
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard-a", f)
	startGuard(t, kir.Namespace, app.Namespace, "guard-b", f)
	waitGuarded(t, kir.Namespace, pod)
	kc := attacker(t, app.Namespace)

	removeLabel(t, kc, pod)
	took := waitContained(t, pod, orig, reaction)
	t.Logf("label restored in %s", took)
	// Removing a field leaves the remover owning nothing: managedFields
	// may not name it at all.
	expectFinding(t, f, tamper.LabelRemoved, pod.UID, "unauthenticated")

	deletePolicy(t, kc, pod)
	took = waitContained(t, pod, orig, reaction)
	t.Logf("policy recreated in %s", took)
	expectFinding(t, f, tamper.PolicyDeleted, pod.UID, "DELETE leaves nothing")

	// Open kir's own policy: an ingress rule from anywhere. An apply
	// would leave a rule another manager owns; the guard must not.
	patch := []byte(`{"spec":{"ingress":[{}]}}`)
	if _, err := kc.NetworkingV1().NetworkPolicies(pod.Namespace).Patch(t.Context(), orig.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	took = waitContained(t, pod, orig, reaction)
	t.Logf("policy spec restored in %s", took)
	expectFinding(t, f, tamper.PolicyChanged, pod.UID, attackerManager)

	removeLabel(t, kc, pod)
	deletePolicy(t, kc, pod)
	took = waitContained(t, pod, orig, reaction)
	t.Logf("label and policy restored in %s", took)

	// An allow-all policy of the attacker's, labelled as kir's to hide.
	open := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}}, Egress: []networkingv1.NetworkPolicyEgressRule{{}},
		},
	}
	if _, err := kc.NetworkingV1().NetworkPolicies(app.Namespace).Create(t.Context(), open, metav1.CreateOptions{FieldManager: attackerManager}); err != nil {
		t.Fatal(err)
	}
	err = kubetest.Eventually(t.Context(), reaction, func(context.Context) (bool, error) {
		return len(f.of(tamper.PolicyAdmits, pod.UID)) > 0, nil
	})
	if err != nil {
		t.Fatalf("the allow-all policy was not reported within %s: %v", reaction, err)
	}
	a := f.of(tamper.PolicyAdmits, pod.UID)[0]
	if a.Restored || !strings.Contains(a.Object, "allow-all") || !strings.Contains(a.What, "Ingress and Egress") || !strings.Contains(a.Manager, attackerManager) {
		t.Errorf("the allow-all finding: %+v", a)
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(app.Namespace).Get(t.Context(), "allow-all", metav1.GetOptions{}); err != nil {
		t.Errorf("the guard deleted the attacker's policy (it must only report it): %v", err)
	}
	if len(f.of(tamper.PolicyAdmits, other.UID)) > 0 {
		t.Errorf("a finding about %s, which kir never quarantined", other.Name)
	}
	// One guard acts: each lift once (a resync may find the same thing
	// again only if it was lifted again).
	if n := len(f.of(tamper.LabelRemoved, pod.UID)); n != 2 {
		t.Errorf("%d label-removed findings, want 2 (one guard acting)", n)
	}
	if n := podEvents(t, pod, "QuarantineTampered"); n < 5 {
		t.Errorf("%d QuarantineTampered Events on the pod, want at least 5", n)
	}
	if n := podEvents(t, pod, "QuarantineWeakened"); n != 1 {
		t.Errorf("%d QuarantineWeakened Events on the pod, want 1", n)
	}
}

// expectFinding checks that the guard reported kind about uid, restored,
// naming manager as client-reported.
func expectFinding(t *testing.T, f *findings, kind tamper.Kind, uid types.UID, manager string) {
	t.Helper()
	var got []tamper.Finding
	err := kubetest.Eventually(t.Context(), reaction, func(context.Context) (bool, error) {
		got = f.of(kind, uid)
		return len(got) > 0, nil
	})
	if err != nil {
		t.Fatalf("no %s finding (all: %+v)", kind, f.about(uid))
	}
	x := got[len(got)-1]
	if !x.Restored || x.Error != "" || x.Incident != "inc-tamper" || !strings.Contains(x.Manager, manager) {
		t.Errorf("%s finding: %+v; want restored, incident inc-tamper, manager %q", kind, x, manager)
	}
	if kind != tamper.PolicyDeleted && !strings.Contains(x.Manager, "unauthenticated") {
		t.Errorf("%s finding's manager %q does not say it is unauthenticated", kind, x.Manager)
	}
}

// TestGuardStandsDownForRelease: kir release, while the guard runs,
// releases the pod for good: nothing comes back within three times the
// guard's reaction time, the guard forgets the pod and the release mark
// is gone.
func TestGuardStandsDownForRelease(t *testing.T) {
	t.Parallel()
	kir, app, pod := quarantined(t)
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	waitGuarded(t, kir.Namespace, pod)

	res, err := contain.Release(t.Context(), env(kir.Namespace), contain.ReleaseParams{Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name)})
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	if out := res.Output.(contain.ReleaseOutput); len(out.Released) != 1 {
		t.Fatalf("release: %+v", out)
	}
	if res.Writes[0].Kind != "Lease" || !res.Writes[0].Done {
		t.Errorf("release's first write is %+v, want its mark (a Lease in kir's namespace)", res.Writes[0])
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
	if got := f.about(pod.UID); len(got) > 0 {
		t.Errorf("findings about a released pod: %+v", got)
	}
	for _, name := range []string{tamper.MemoryName(pod.UID), contain.ReleasingLease(pod.UID)} {
		if _, err := cluster.Client.CoordinationV1().Leases(kir.Namespace).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
			t.Errorf("Lease %s is still there after the release", name)
		}
	}
	// Containing it again: guarded again.
	isolate(t, kir.Namespace, pod)
	waitGuarded(t, kir.Namespace, pod)
	orig, _ := policyOf(t.Context(), pod)
	removeLabel(t, attacker(t, app.Namespace), pod)
	waitContained(t, pod, orig, reaction)
}

// TestGuardRemembers: what is lifted while no guard runs is restored when
// one starts: a label removed (the policy is there to learn from), and a
// label and policy both removed from a pod a guard learned before it
// stopped (its memory in kir's namespace). A pod deleted meanwhile is
// forgotten, not restored.
func TestGuardRemembers(t *testing.T) {
	t.Parallel()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	app := cluster.NewFixture(t, "tamper-app", 3)
	known, unseen, deleted := app.Pods[0], app.Pods[1], app.Pods[2]
	isolate(t, kir.Namespace, known)
	isolate(t, kir.Namespace, deleted)
	f := &findings{}
	stop := startGuard(t, kir.Namespace, app.Namespace, "before", f)
	waitGuarded(t, kir.Namespace, known)
	waitGuarded(t, kir.Namespace, deleted)
	stop()

	isolate(t, kir.Namespace, unseen) // while no guard runs
	origKnown, _ := policyOf(t.Context(), known)
	origUnseen, _ := policyOf(t.Context(), unseen)
	kc := attacker(t, app.Namespace)
	removeLabel(t, kc, known)
	deletePolicy(t, kc, known)
	removeLabel(t, kc, unseen)
	if err := cluster.Client.CoreV1().Pods(app.Namespace).Delete(t.Context(), deleted.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	startGuard(t, kir.Namespace, app.Namespace, "after", f)
	waitContained(t, known, origKnown, 15*time.Second)
	waitContained(t, unseen, origUnseen, 15*time.Second)
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoordinationV1().Leases(kir.Namespace).Get(ctx, tamper.MemoryName(deleted.UID), metav1.GetOptions{})
		return err != nil, nil
	})
	if err != nil {
		t.Errorf("the guard still remembers the deleted pod %s", deleted.Name)
	}
	if got := f.about(deleted.UID); len(got) > 0 {
		t.Errorf("findings about a deleted pod: %+v", got)
	}
}

// TestGuardReleasedWhileDown: a pod released while no guard runs (its
// memory still in kir's namespace) stays released when a guard starts:
// release marked it, since a guard had run there.
func TestGuardReleasedWhileDown(t *testing.T) {
	t.Parallel()
	kir, app, pod := quarantined(t)
	f := &findings{}
	stop := startGuard(t, kir.Namespace, app.Namespace, "before", f)
	waitGuarded(t, kir.Namespace, pod)
	stop()
	if _, err := contain.Release(t.Context(), env(kir.Namespace), contain.ReleaseParams{Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name)}); err != nil {
		t.Fatalf("release: %v", err)
	}
	startGuard(t, kir.Namespace, app.Namespace, "after", f)
	err := kubetest.Eventually(t.Context(), 15*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoordinationV1().Leases(kir.Namespace).Get(ctx, tamper.MemoryName(pod.UID), metav1.GetOptions{})
		return err != nil, nil
	})
	if err != nil {
		t.Errorf("the guard still remembers the released pod")
	}
	deadline := time.Now().Add(3 * reaction)
	for time.Now().Before(deadline) {
		ok, err := labelled(t.Context(), pod)
		p, perr := policyOf(t.Context(), pod)
		if err != nil || perr != nil || ok || p != nil {
			t.Fatalf("a released pod was contained again: labelled %v, policy %v (%v, %v)", ok, p != nil, err, perr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := f.about(pod.UID); len(got) > 0 {
		t.Errorf("findings about a released pod: %+v", got)
	}
}

// TestGuardKeepsAWiderContainAgain: a responder contains the pod again
// with more allowed (a CIDR), then keeping its sessions, then not; the
// guard, which remembered the narrower quarantine, neither puts the
// policy back nor reports a change, and the memory is what contain wrote.
func TestGuardKeepsAWiderContainAgain(t *testing.T) {
	t.Parallel()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	app := cluster.NewFixture(t, "tamper-app", 1)
	pod := app.Pods[0]
	f := &findings{}
	startGuard(t, kir.Namespace, app.Namespace, "guard", f)
	isolate(t, kir.Namespace, pod)
	waitGuarded(t, kir.Namespace, pod)
	time.Sleep(time.Second) // the guard has seen the first quarantine
	wider := contain.IsolateParams{Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name), AllowDNS: true, AllowEgressCIDRs: []string{"10.0.0.0/8"}}
	if _, err := contain.Isolate(t.Context(), env(kir.Namespace), wider); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a resync (2 s)
	p, err := policyOf(t.Context(), pod)
	if err != nil || p == nil {
		t.Fatalf("kir's policy: %v", err)
	}
	q, problems, err := contain.ReadQuarantine(p)
	if err != nil || len(problems) > 0 || len(q.Allow.EgressCIDRs) != 1 {
		t.Errorf("the policy after containing again allows %+v (%v %v), want the CIDR", q.Allow, err, problems)
	}
	l, err := cluster.Client.CoordinationV1().Leases(kir.Namespace).Get(t.Context(), tamper.MemoryName(pod.UID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := contain.ReadMemory(l.Name, l.Annotations); err != nil || len(m.Allow.EgressCIDRs) != 1 {
		t.Errorf("the memory after containing again: %+v (%v), want the CIDR", m.Allow, err)
	}
	for _, keep := range []bool{true, false, true, false} {
		again := wider
		again.KeepSessions = keep
		if _, err := contain.Isolate(t.Context(), env(kir.Namespace), again); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	if p, err := policyOf(t.Context(), pod); err != nil || p == nil || p.Annotations[action.AnnotationSessions] != "" {
		t.Errorf("contained again without keeping sessions, the policy says %v (%v)", p.Annotations, err)
	}
	if got := f.about(pod.UID); len(got) > 0 {
		t.Errorf("findings about a pod a responder contained again: %+v", got)
	}
}
