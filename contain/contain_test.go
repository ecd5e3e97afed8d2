package contain_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
)

func isolate(t *testing.T, env action.Env, p contain.IsolateParams) (action.Result, contain.IsolateOutput) {
	t.Helper()
	res, err := contain.Isolate(t.Context(), env, p)
	if err != nil {
		t.Fatalf("Isolate(%+v): %v", p, err)
	}
	return res, res.Output.(contain.IsolateOutput)
}

func cordon(t *testing.T, env action.Env, nodes ...string) action.Result {
	t.Helper()
	res, err := contain.Cordon(t.Context(), env, contain.CordonParams{Nodes: nodes})
	if err != nil {
		t.Fatalf("Cordon(%v): %v", nodes, err)
	}
	return res
}

func release(t *testing.T, env action.Env, p contain.ReleaseParams) contain.ReleaseOutput {
	t.Helper()
	res, err := contain.Release(t.Context(), env, p)
	if err != nil {
		t.Fatalf("Release(%+v): %v", p, err)
	}
	out := res.Output.(contain.ReleaseOutput)
	if len(out.Released) > 0 {
		if _, err := contain.ReleaseNode(t.Context(), env, contain.ReleaseNodeParams{Nodes: out.Nodes, ReleasedPods: out.Released}); err != nil {
			t.Fatalf("ReleaseNode(%v): %v", out.Nodes, err)
		}
	}
	return out
}

func TestIsolateSelectsOnlyTheTargetPod(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	target := f.Pods[0]
	_, out := isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target.Name)})
	cordon(t, f.env(), out.Nodes...)

	got := f.Pod(t, target.Name)
	pols := selectingPolicies(t, got)
	if len(pols) != 1 {
		t.Fatalf("target pod is selected by %d policies, want exactly kir's", len(pols))
	}
	p := pols[0]
	if want := action.PolicyName(string(target.UID)); p.Name != want {
		t.Errorf("policy name = %q, want %q", p.Name, want)
	}
	if diff := cmp.Diff([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, p.Spec.PolicyTypes); diff != "" {
		t.Errorf("policyTypes (-want +got):\n%s", diff)
	}
	if len(p.Spec.Ingress) != 0 || len(p.Spec.Egress) != 0 {
		t.Errorf("quarantine policy has rules (ingress %v, egress %v), want deny-all", p.Spec.Ingress, p.Spec.Egress)
	}
	if diff := cmp.Diff(map[string]string{action.LabelQuarantine: string(target.UID)}, p.Spec.PodSelector.MatchLabels); diff != "" || len(p.Spec.PodSelector.MatchExpressions) != 0 {
		t.Errorf("podSelector must be the quarantine label alone (-want +got):\n%s", diff)
	}
	if p.Labels[action.LabelManagedBy] != action.ManagedByKir {
		t.Errorf("policy labels = %v, want managed-by kir", p.Labels)
	}
	// The record is on the policy; the pod carries the label alone.
	for _, ann := range []string{action.AnnotationIncident, action.AnnotationContainedAt, action.AnnotationContainedBy, action.AnnotationPod} {
		if p.Annotations[ann] == "" {
			t.Errorf("policy lacks annotation %s: %v", ann, p.Annotations)
		}
	}
	if p.Annotations[action.AnnotationIncident] != "inc-test" || p.Annotations[action.AnnotationContainedBy] != "test-admin" {
		t.Errorf("policy record = %v", p.Annotations)
	}
	if a := kirOnly(got.Annotations); len(a) != 0 {
		t.Errorf("pod annotated by kir: %v", a)
	}

	// The siblings keep serving: no kir policy selects them.
	for _, sib := range f.Pods[1:] {
		for _, p := range selectingPolicies(t, f.Pod(t, sib.Name)) {
			if p.Labels[action.LabelManagedBy] == action.ManagedByKir {
				t.Errorf("sibling %s is selected by kir policy %s", sib.Name, p.Name)
			}
		}
	}

	node := f.GetNode(t)
	if !node.Spec.Unschedulable || !hasQuarantineTaint(node) {
		t.Errorf("node unschedulable=%v taints=%v, want cordoned and tainted", node.Spec.Unschedulable, node.Spec.Taints)
	}
	if node.Annotations[action.AnnotationCordoned] != "true" {
		t.Errorf("node annotations = %v, want kir's cordon recorded", node.Annotations)
	}
	events, err := cluster.Client.CoreV1().Events(f.Namespace).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + target.Name + ",reason=Quarantined"})
	if err != nil || len(events.Items) != 1 {
		t.Errorf("Quarantined events on the pod: %d (err %v), want 1", len(events.Items), err)
	}
}

func TestContainTwiceGivesTheSameState(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	target := f.Pods[0].Name
	p := contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target), Detach: true}
	_, out := isolate(t, f.env(), p)
	cordon(t, f.env(), out.Nodes...)
	first := f.Snapshot(t, target)

	later := f.env()
	later.Now = func() time.Time { return time.Now().Add(time.Hour) } // a rerun must not rewrite the record
	later.Incident = "inc-other"
	res, out2 := isolate(t, later, p)
	cres := cordon(t, later, out2.Nodes...)
	if res.Changed || cres.Changed {
		t.Errorf("second containment changed something: isolate %v, cordon %v; writes %+v", res.Changed, cres.Changed, res.Writes)
	}
	if !out2.Pods[0].AlreadyContained {
		t.Errorf("second run did not see the pod as contained: %+v", out2.Pods[0])
	}
	if diff := cmp.Diff(first, f.Snapshot(t, target)); diff != "" {
		t.Errorf("state after containing twice differs (-once +twice):\n%s", diff)
	}
}

func TestDryRunServerPersistsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	target := f.Pods[0].Name
	before := f.Snapshot(t, target)
	env := f.env()
	env.DryRun = action.DryRunServer
	res, out := isolate(t, env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target), Detach: true})
	if _, err := contain.Cordon(t.Context(), env, contain.CordonParams{Nodes: out.Nodes}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, f.Snapshot(t, target)); diff != "" {
		t.Errorf("server dry run changed the cluster (-before +after):\n%s", diff)
	}
	// The server validated and returned the exact objects.
	var policy *networkingv1.NetworkPolicy
	for _, w := range res.Writes {
		if w.Kind == "NetworkPolicy" {
			policy, _ = w.Body.(*networkingv1.NetworkPolicy)
		}
		if !w.Done {
			t.Errorf("write %s %s/%s not accepted by the server: %s", w.Verb, w.Kind, w.Name, w.Error)
		}
	}
	if policy == nil || policy.Name != action.PolicyName(string(f.Pods[0].UID)) || policy.UID == "" {
		t.Errorf("server dry run did not return the policy the server would store: %+v", policy)
	}
	events, err := cluster.Client.CoreV1().Events(f.Namespace).List(t.Context(), metav1.ListOptions{FieldSelector: "reason=Quarantined"})
	if err != nil || len(events.Items) != 0 {
		t.Errorf("server dry run stored %d events (err %v)", len(events.Items), err)
	}
}

func TestReleaseRestoresLabelsAndAnnotationsExactly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	target := f.Pods[0].Name
	before := f.Snapshot(t, target)
	_, out := isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target), AllowDNS: true})
	cordon(t, f.env(), out.Nodes...)

	rel := release(t, f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target)})
	if rel.Pods[0].NotContained {
		t.Fatal("release did not see the pod as contained")
	}
	if diff := cmp.Diff(before, f.Snapshot(t, target)); diff != "" {
		t.Errorf("release did not restore the prior state (-before +after):\n%s", diff)
	}
}

func TestReleaseLeavesAnAdminCordonInPlace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	ctx := t.Context()
	n := f.GetNode(t)
	n.Spec.Unschedulable = true // an admin cordoned it before the incident
	if _, err := cluster.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	target := f.Pods[0].Name
	_, out := isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target)})
	cordon(t, f.env(), out.Nodes...)
	if n := f.GetNode(t); !hasQuarantineTaint(n) || n.Annotations[action.AnnotationCordoned] == "true" {
		t.Fatalf("node after contain: taints %v annotations %v; want tainted and not recorded as cordoned by kir", n.Spec.Taints, n.Annotations)
	}
	release(t, f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target)})
	n = f.GetNode(t)
	if !n.Spec.Unschedulable {
		t.Error("release uncordoned a node an admin had cordoned")
	}
	if hasQuarantineTaint(n) || len(kirOnly(n.Annotations)) != 0 {
		t.Errorf("release left kir's taint or annotations: %v %v", n.Spec.Taints, n.Annotations)
	}
}

func TestNodeStaysQuarantinedWhileAContainedPodRemains(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	a, b := f.Pods[0].Name, f.Pods[1].Name
	_, out := isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Selector: "app=web"})
	if len(out.Pods) != 2 {
		t.Fatalf("selector isolated %d pods, want 2", len(out.Pods))
	}
	cordon(t, f.env(), out.Nodes...)

	release(t, f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(a)})
	if n := f.GetNode(t); !n.Spec.Unschedulable || !hasQuarantineTaint(n) {
		t.Errorf("node released while pod %s is still contained", b)
	}
	release(t, f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(b)})
	if n := f.GetNode(t); n.Spec.Unschedulable || hasQuarantineTaint(n) {
		t.Errorf("node still quarantined after its last contained pod was released: %v %v", n.Spec.Unschedulable, n.Spec.Taints)
	}
}

func TestReleaseOfAPodNeverContainedChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	res, err := contain.Release(t.Context(), f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[0].Name)})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Output.(contain.ReleaseOutput)
	if !out.Pods[0].NotContained || res.Changed || len(res.Writes) != 0 {
		t.Errorf("release of an uncontained pod: %+v, changed %v, writes %v", out.Pods[0], res.Changed, res.Writes)
	}
}

func TestDetachStartsAReplacementAndReattachRestores(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	ctx := t.Context()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: f.Namespace},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"tier": "frontend"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := cluster.Client.CoreV1().Services(f.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	target := f.Pods[0]
	_, out := isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target.Name), Detach: true})
	removed := out.Pods[0].DetachedLabels
	for _, k := range []string{"app", "pod-template-hash", "tier"} {
		if _, ok := removed[k]; !ok {
			t.Errorf("detach did not remove selector label %q; removed %v", k, removed)
		}
	}
	got := f.Pod(t, target.Name)
	for k := range removed {
		if _, ok := got.Labels[k]; ok {
			t.Errorf("pod still has label %q", k)
		}
	}
	var rec map[string]string
	if err := json.Unmarshal([]byte(got.Annotations[action.AnnotationDetachedLabels]), &rec); err != nil || !maps.Equal(rec, removed) {
		t.Errorf("detached-labels annotation = %q, want %v", got.Annotations[action.AnnotationDetachedLabels], removed)
	}
	// The real ReplicaSet controller releases the pod and starts a clean
	// replacement, while the detached pod stays alive and isolated.
	f.WaitPods(t, "app=web", 3)
	if err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(f.Namespace).Get(ctx, target.Name, metav1.GetOptions{})
		return err == nil && metav1.GetControllerOf(p) == nil && p.DeletionTimestamp == nil, err
	}); err != nil {
		t.Fatalf("the ReplicaSet did not release the detached pod: %v", err)
	}
	if pols := selectingPolicies(t, f.Pod(t, target.Name)); len(pols) != 1 {
		t.Errorf("detached pod selected by %d policies, want kir's only", len(pols))
	}

	// Release without --reattach keeps it detached; with it, labels return.
	rel := release(t, f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target.Name)})
	if !maps.Equal(rel.Pods[0].StillDetached, removed) {
		t.Errorf("release reported still detached %v, want %v", rel.Pods[0].StillDetached, removed)
	}
	if p := f.Pod(t, target.Name); p.Labels["app"] != "" || p.Labels[action.LabelQuarantine] != "" {
		t.Errorf("after release without --reattach, labels = %v", p.Labels)
	}
	release(t, f.env(), contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target.Name), Reattach: true})
	p := f.Pod(t, target.Name)
	if diff := cmp.Diff(target.Labels, p.Labels); diff != "" {
		t.Errorf("labels after --reattach (-original +now):\n%s", diff)
	}
	if len(kirOnly(p.Annotations)) != 0 {
		t.Errorf("kir annotations left after reattach: %v", p.Annotations)
	}
}

// failingPolicyList is the real client, except that listing
// NetworkPolicies fails.
type failingPolicyList struct{ kubernetes.Interface }

func (c failingPolicyList) NetworkingV1() networkingv1client.NetworkingV1Interface {
	return failingPolicyNetworking{c.Interface.NetworkingV1()}
}

type failingPolicyNetworking struct {
	networkingv1client.NetworkingV1Interface
}

func (n failingPolicyNetworking) NetworkPolicies(ns string) networkingv1client.NetworkPolicyInterface {
	return failingPolicies{n.NetworkingV1Interface.NetworkPolicies(ns)}
}

type failingPolicies struct {
	networkingv1client.NetworkPolicyInterface
}

func (failingPolicies) List(context.Context, metav1.ListOptions) (*networkingv1.NetworkPolicyList, error) {
	return nil, errors.New("injected list failure")
}

// The list of policies that may weaken the isolation only feeds warnings:
// when it fails, the pod is still isolated, and the result says what
// could not be checked.
func TestPolicyListFailureIsAWarning(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	env := f.env()
	env.Kube = failingPolicyList{cluster.Client}
	res, out := isolate(t, env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[0].Name)})
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), out.Pods[0].Policy, metav1.GetOptions{}); err != nil {
		t.Errorf("quarantine policy not stored: %v", err)
	}
	if p := f.Pod(t, f.Pods[0].Name); p.Labels[action.LabelQuarantine] != out.Pods[0].Quarantine {
		t.Errorf("pod not labelled: %v", p.Labels)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return containsAll(w, "could not check", "injected list failure") }) {
		t.Errorf("no warning says the weakening policies were not checked: %v", res.Warnings)
	}
}

func TestWeakeningPoliciesAreReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	allow := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-web", Namespace: f.Namespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Create(t.Context(), allow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, out := isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[0].Name)})
	if diff := cmp.Diff([]contain.Weakener{{Name: "allow-web", Allows: []string{"Ingress"}}}, out.Pods[0].OtherPolicies); diff != "" {
		t.Errorf("other policies (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return containsAll(w, "allow-web", "additive") }) {
		t.Errorf("no warning names allow-web: %v", res.Warnings)
	}
	if !slices.Contains(res.Warnings, contain.CNIWarning) {
		t.Errorf("no CNI warning: %v", res.Warnings)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// The workload knows its own UID, and so its quarantine policy's name: a
// policy of that name created before kir contains the pod, admitting all
// ingress, must not survive kir's apply with its rule (without the fence,
// nothing stops the create).
func TestIsolateOverASquattedPolicyDeniesAll(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	target := f.Pods[0]
	squat := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: action.PolicyName(action.QuarantineValue(target.UID)), Namespace: f.Namespace,
			// Kept by kir's apply, the node agent would keep the
			// attacker's open sessions; a contained-by of its choosing.
			Annotations: map[string]string{action.AnnotationSessions: action.SessionsKeep, action.AnnotationContainedBy: "nobody"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Create(t.Context(), squat, metav1.CreateOptions{FieldManager: "squatter"}); err != nil {
		t.Fatal(err)
	}
	isolate(t, f.env(), contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(target.Name)})
	p, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), squat.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Ingress) != 0 || len(p.Spec.Egress) != 0 {
		t.Errorf("kir's policy over a squatted one has rules (ingress %v, egress %v), want deny-all", p.Spec.Ingress, p.Spec.Egress)
	}
	if diff := cmp.Diff(map[string]string{action.LabelQuarantine: action.QuarantineValue(target.UID)}, p.Spec.PodSelector.MatchLabels); diff != "" {
		t.Errorf("podSelector (-want +got):\n%s", diff)
	}
	if v, ok := p.Annotations[action.AnnotationSessions]; ok {
		t.Errorf("the squatter's %s: %q survived: the node agent would keep the attacker's sessions", action.AnnotationSessions, v)
	}
	if got := p.Annotations[action.AnnotationContainedBy]; got != f.env().Actor {
		t.Errorf("contained-by %q, want kir's actor %q", got, f.env().Actor)
	}
}
