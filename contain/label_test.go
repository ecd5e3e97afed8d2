package contain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
)

// params builds an action's parameters as a playbook step does, from
// their JSON names.
func params[P any](t testing.TB, m map[string]any) P {
	t.Helper()
	var p P
	b, err := json.Marshal(m)
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil {
		t.Fatalf("parameters %v: %v", m, err)
	}
	return p
}

// hostilePod creates, on f's node, a pod labelled app=web like f's
// Deployment's pods, plus labels and annotations of its own.
func hostilePod(t *testing.T, f *fixture, name string, lbls, annos map[string]string) *corev1.Pod {
	t.Helper()
	lbls["app"] = "web"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace, Labels: lbls, Annotations: annos},
		Spec: corev1.PodSpec{
			NodeName:   f.Node,
			Containers: []corev1.Container{{Name: "c", Image: "registry.example/hostile:1"}},
		},
	}
	got, err := cluster.Client.CoreV1().Pods(f.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	return got
}

// onlyItsKirPolicy checks that exactly one policy, kir's for target,
// selects target, and that no kir policy selects any other pod of the
// namespace.
func onlyItsKirPolicy(t *testing.T, f *fixture, target *corev1.Pod) {
	t.Helper()
	pods, err := cluster.Client.CoreV1().Pods(f.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		var names []string
		for _, pol := range selectingPolicies(t, &p) {
			if pol.Labels[action.LabelManagedBy] == action.ManagedByKir {
				names = append(names, pol.Name)
			}
		}
		want := []string(nil)
		if p.UID == target.UID {
			want = []string{action.PolicyName(string(target.UID))}
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("kir policies selecting pod %s (-want +got):\n%s", p.Name, diff)
		}
	}
}

// A pod cannot refuse its own quarantine by being large: the label lands
// alone, and release puts every label and annotation back.
func TestIsolateAPodThatWouldOverflowItsAnnotations(t *testing.T) {
	t.Parallel()
	manyLabels := map[string]string{}
	for i := range 2100 {
		manyLabels[fmt.Sprintf("l%04d-%s", i, strings.Repeat("k", 57))] = strings.Repeat("v", 63)
	}
	const annoKey = "blob"
	nearlyFull := map[string]string{annoKey: strings.Repeat("a", 262000-len(annoKey))}
	for _, tc := range []struct {
		name         string
		lbls, annos  map[string]string
		wantLabels   int
		wantAnnosLen int
	}{
		{"2100 labels", manyLabels, nil, 2101, 0},
		{"262000 bytes of annotations", map[string]string{}, nearlyFull, 1, 262000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2)
			pod := hostilePod(t, f, "hostile", tc.lbls, tc.annos)
			before := f.Snapshot(t, pod.Name)
			if len(before.Labels) != tc.wantLabels {
				t.Fatalf("the pod has %d labels, want %d", len(before.Labels), tc.wantLabels)
			}
			res, out := isolate(t, f.env(), params[contain.IsolateParams](t, map[string]any{"namespace": f.Namespace, "name": pod.Name}))
			if !res.Changed || out.Pods[0].Fallback != nil {
				t.Errorf("isolation: changed %v, outcome %+v", res.Changed, out.Pods[0])
			}
			got := f.Pod(t, pod.Name)
			if got.Labels[action.LabelQuarantine] != string(pod.UID) {
				t.Fatalf("quarantine label did not land: %q", got.Labels[action.LabelQuarantine])
			}
			onlyItsKirPolicy(t, f, got)
			if n := annotationBytes(got.Annotations); n != tc.wantAnnosLen {
				t.Errorf("the pod's annotations are %d bytes, want %d: isolation wrote some", n, tc.wantAnnosLen)
			}

			rel := release(t, f.env(), params[contain.ReleaseParams](t, map[string]any{"namespace": f.Namespace, "name": pod.Name}))
			if len(rel.Released) != 1 {
				t.Fatalf("release: %+v", rel)
			}
			if diff := cmp.Diff(before, f.Snapshot(t, pod.Name)); diff != "" {
				t.Errorf("release did not restore the pod exactly (-before +after):\n%s", diff)
			}
		})
	}
}

func annotationBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// The label write is the label alone, under a field manager of its own;
// the record is on the policy, under the policy's.
func TestTheLabelIsWrittenAloneAndTheRecordIsOnThePolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	target := f.Pods[0].Name
	_, out := isolate(t, f.env(), params[contain.IsolateParams](t, map[string]any{"namespace": f.Namespace, "name": target}))
	p := f.Pod(t, target)
	if a := kirOnly(p.Annotations); len(a) != 0 {
		t.Errorf("kir annotated the pod: %v", a)
	}
	var managers []string
	for _, m := range p.ManagedFields {
		if strings.HasPrefix(m.Manager, "kir") {
			managers = append(managers, m.Manager)
			want := `{"f:metadata":{"f:labels":{"f:` + action.LabelQuarantine + `":{}}}}`
			if m.Manager != action.FieldManagerQuarantineLabel || m.Operation != metav1.ManagedFieldsOperationApply || m.FieldsV1.GetRawString() != want {
				t.Errorf("kir's fields on the pod: %s %s %s; want %s to apply %s", m.Manager, m.Operation, m.FieldsV1.GetRawString(), action.FieldManagerQuarantineLabel, want)
			}
		}
	}
	if len(managers) != 1 {
		t.Errorf("kir's field managers on the pod: %v, want %s alone", managers, action.FieldManagerQuarantineLabel)
	}
	pol, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), out.Pods[0].Policy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := kirOnly(pol.Annotations)
	if rec[action.AnnotationIncident] != "inc-test" || rec[action.AnnotationContainedBy] != "test-admin" ||
		rec[action.AnnotationPod] != f.Namespace+"/"+target || rec[action.AnnotationContainedAt] == "" {
		t.Errorf("the policy's record: %v", rec)
	}
	if len(pol.ManagedFields) != 1 || pol.ManagedFields[0].Manager != action.FieldManagerQuarantinePolicy {
		t.Errorf("the policy's field managers: %+v, want %s alone", pol.ManagedFields, action.FieldManagerQuarantinePolicy)
	}
}

// previousKirContains makes the writes the release of kir before
// label-first made, as it made them: the policy, then the label and every
// annotation of its record in one apply, all under field manager "kir".
func previousKirContains(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	ctx := t.Context()
	value := action.QuarantineValue(pod.UID)
	now := time.Now().UTC().Format(time.RFC3339)
	apply := metav1.ApplyOptions{FieldManager: "kir", Force: true}
	policy := contain.QuarantinePolicy(pod, contain.AllowList{DNS: true}, map[string]string{
		action.AnnotationIncident: "inc-old", action.AnnotationContainedAt: now, action.AnnotationPod: pod.Namespace + "/" + pod.Name,
	})
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).Apply(ctx, policy, apply); err != nil {
		t.Fatal(err)
	}
	prior := map[string]string{}
	for k, v := range pod.Labels {
		prior[k] = v
	}
	priorJSON, _ := json.Marshal(prior)
	label := corev1ac.Pod(pod.Name, pod.Namespace).WithUID(pod.UID).
		WithLabels(map[string]string{action.LabelQuarantine: value}).
		WithAnnotations(map[string]string{
			action.AnnotationIncident: "inc-old", action.AnnotationContainedAt: now,
			action.AnnotationContainedBy: "old-admin", action.AnnotationPolicy: action.PolicyName(value),
			action.AnnotationPriorLabels: string(priorJSON),
		})
	if _, err := cluster.Client.CoreV1().Pods(pod.Namespace).Apply(ctx, label, apply); err != nil {
		t.Fatal(err)
	}
}

// A pod contained by the previous release of kir is released exactly by
// this one, whether or not this one contained it again in between.
func TestReleaseOfAPodContainedByThePreviousKir(t *testing.T) {
	t.Parallel()
	for _, again := range []bool{false, true} {
		t.Run(fmt.Sprintf("contained again %v", again), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2)
			target := f.Pod(t, f.Pods[0].Name)
			target.Annotations = map[string]string{"team": "payments"}
			target, err := cluster.Client.CoreV1().Pods(f.Namespace).Update(t.Context(), target, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			before := f.Snapshot(t, target.Name)
			previousKirContains(t, target)
			onlyItsKirPolicy(t, f, f.Pod(t, target.Name))
			contained := f.Snapshot(t, target.Name)
			if again {
				res, out := isolate(t, f.env(), params[contain.IsolateParams](t, map[string]any{"namespace": f.Namespace, "name": target.Name}))
				if !out.Pods[0].AlreadyContained || res.Changed {
					t.Errorf("containing again: changed %v, outcome %+v", res.Changed, out.Pods[0])
				}
				pol, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), out.Pods[0].Policy, metav1.GetOptions{})
				if err != nil || pol.Annotations[action.AnnotationIncident] != "inc-old" {
					t.Errorf("containing again rewrote the record: %v (%v)", pol.Annotations, err)
				}
				now := f.Snapshot(t, target.Name)
				if diff := cmp.Diff(contained.Labels, now.Labels); diff != "" {
					t.Errorf("containing again changed the pod's labels (-before +after):\n%s", diff)
				}
				if diff := cmp.Diff(contained.Annotations, now.Annotations); diff != "" {
					t.Errorf("containing again changed the pod's annotations (-before +after):\n%s", diff)
				}
			}
			rel := release(t, f.env(), params[contain.ReleaseParams](t, map[string]any{"namespace": f.Namespace, "name": target.Name}))
			if len(rel.Released) != 1 {
				t.Fatalf("release: %+v", rel)
			}
			if diff := cmp.Diff(before, f.Snapshot(t, target.Name)); diff != "" {
				t.Errorf("release did not restore the pod exactly (-before +after):\n%s", diff)
			}
		})
	}
}

// denyQuarantineLabel makes the API server refuse, in f's namespace only,
// any pod write that adds the quarantine label, and waits until it does.
func denyQuarantineLabel(t *testing.T, f *fixture) {
	t.Helper()
	ctx := t.Context()
	adm := cluster.Client.AdmissionregistrationV1()
	fail := admissionv1.Fail
	name := "deny-quarantine-" + f.Namespace
	pol := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: `!has(object.metadata.labels) || !('` + action.LabelQuarantine + `' in object.metadata.labels) ||
					(has(oldObject.metadata.labels) && '` + action.LabelQuarantine + `' in oldObject.metadata.labels)`,
				Message: "test: the quarantine label is denied in this namespace",
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.Namespace},
			}},
		},
	}
	if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, pol, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server loads policies asynchronously: probe with a dry run.
	probe := f.Pods[0]
	label := corev1ac.Pod(probe.Name, f.Namespace).WithLabels(map[string]string{action.LabelQuarantine: "probe"})
	err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().Pods(f.Namespace).Apply(ctx, label, metav1.ApplyOptions{FieldManager: "probe", DryRun: []string{metav1.DryRunAll}})
		return err != nil && !apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the admission policy never denied the label: %v", err)
	}
}

// When the label cannot land, a policy on the pod's own labels isolates
// it, loudly: the step fails, the run is partial, the output names the
// other pods cut off too, and the node is contained all the same. Release
// then restores everything.
func TestRefusedLabelFallsBackToThePodsOwnLabels(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	other := newFixture(t, 1) // the same Deployment in another namespace: never selected
	target := f.Pods[0].Name
	before := f.Snapshot(t, target)
	denyQuarantineLabel(t, f)

	p := params[contain.IsolateParams](t, map[string]any{"namespace": f.Namespace, "name": target})
	res, err := contain.Isolate(t.Context(), f.env(), p)
	if !errors.Is(err, contain.ErrFallback) {
		t.Fatalf("Isolate with the label denied: %v, want ErrFallback", err)
	}
	out := res.Output.(contain.IsolateOutput)
	wantOthers := []string{f.Pods[1].Name, f.Pods[2].Name}
	slices.Sort(wantOthers)
	fb := out.Pods[0].Fallback
	if fb == nil || !strings.Contains(fb.Reason, "denied") {
		t.Fatalf("no fallback told: %+v", out.Pods[0])
	}
	if diff := cmp.Diff(wantOthers, fb.Selects); diff != "" {
		t.Errorf("other pods the fallback selects (-want +got):\n%s", diff)
	}
	for _, name := range wantOthers {
		if !strings.Contains(err.Error(), name) || !slices.ContainsFunc(out.Text(), func(l string) bool { return strings.Contains(l, "FALLBACK") && strings.Contains(l, name) }) {
			t.Errorf("neither the error nor the text names %s: %v\n%s", name, err, strings.Join(out.Text(), "\n"))
		}
	}
	got := f.Pod(t, target)
	if _, ok := got.Labels[action.LabelQuarantine]; ok {
		t.Fatal("the denied label landed")
	}
	pols := selectingPolicies(t, got)
	if len(pols) != 1 || pols[0].Name != out.Pods[0].Policy || pols[0].Annotations[action.AnnotationFallback] == "" {
		t.Errorf("policies selecting the target: %v, want kir's fallback alone", pols)
	}
	if n := len(selectingPolicies(t, other.Pod(t, other.Pods[0].Name))); n != 0 {
		t.Errorf("a pod of another namespace is selected by %d policies", n)
	}
	if !slices.ContainsFunc(res.Writes, func(w action.Write) bool { return w.Kind == "NetworkPolicy" && w.Done }) {
		t.Errorf("writes: %+v; want the fallback policy done, so the run is partial", res.Writes)
	}

	// Again: the same fallback, nothing new.
	rv := pols[0].ResourceVersion
	res2, err := contain.Isolate(t.Context(), f.env(), p)
	if !errors.Is(err, contain.ErrFallback) || res2.Changed {
		t.Errorf("isolating again: changed %v, err %v", res2.Changed, err)
	}
	if pols := selectingPolicies(t, got); len(pols) != 1 || pols[0].ResourceVersion != rv {
		t.Errorf("isolating again rewrote the fallback policy: %+v", pols)
	}

	// kir as a process, through the contain-pod playbook: a partial run
	// that names the other pods, and a contained node.
	r := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}.Run(t, "contain", "pod", target, "-n", f.Namespace, "--no-evidence")
	if r.Code != 6 { // cli.ExitPartial
		t.Errorf("kir contain pod with the label denied: exit %d, want 6 (partial)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, name := range wantOthers {
		if !strings.Contains(r.Stdout+r.Stderr, name) {
			t.Errorf("kir's output does not name %s:\n%s\n%s", name, r.Stdout, r.Stderr)
		}
	}
	if n := f.GetNode(t); !n.Spec.Unschedulable || !hasQuarantineTaint(n) {
		t.Errorf("node not contained after the fallback: unschedulable %v, taints %v", n.Spec.Unschedulable, n.Spec.Taints)
	}

	rel := release(t, f.env(), params[contain.ReleaseParams](t, map[string]any{"namespace": f.Namespace, "name": target}))
	if len(rel.Released) != 1 {
		t.Fatalf("release: %+v", rel)
	}
	if diff := cmp.Diff(before, f.Snapshot(t, target)); diff != "" {
		t.Errorf("release did not restore the prior state (-before +after):\n%s", diff)
	}
}
