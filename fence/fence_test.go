package fence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/fence"
	"kir.dev/kir/internal/kubetest"
)

var dryRun = metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}

// isolate contains pod ns/name as env, and fails unless the pod carries
// its quarantine label and kir's policy is the label-first one (a refused
// label write would leave a fallback policy and no error).
func isolate(t *testing.T, env action.Env, ns, name string, detach bool) *corev1.Pod {
	t.Helper()
	res, err := contain.Isolate(t.Context(), env, contain.IsolateParams{Namespace: action.Namespace(ns), Name: action.PodName(name), Detach: detach})
	if err != nil {
		t.Fatalf("isolating %s/%s as kir: %v", ns, name, err)
	}
	pod, err := cluster.Client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Labels[action.LabelQuarantine] != string(pod.UID) {
		t.Fatalf("pod %s/%s not labelled after isolation (warnings %v)", ns, name, res.Warnings)
	}
	pol, err := cluster.Client.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), action.PolicyName(string(pod.UID)), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if why, ok := pol.Annotations[action.AnnotationFallback]; ok {
		t.Fatalf("kir fell back to the pod's own labels: %s", why)
	}
	return pod
}

func removeLabel(ctx context.Context, c kubernetes.Interface, ns, name string, sub ...string) error {
	patch := []byte(`{"metadata":{"labels":{"` + action.LabelQuarantine + `":null}}}`)
	_, err := c.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, sub...)
	return err
}

// An attacker with the workload's token (patch pods, delete policies)
// cannot lift the quarantine through pods or pods/status, nor delete or
// change kir's policy; the namespace still deletes, policy and all.
func TestAttackerCannotLiftQuarantine(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "attack", 1)
	ctx, ns := t.Context(), f.Namespace
	pod := isolate(t, kirEnv(t), ns, f.Pods[0].Name, false)
	bad := attacker(t, ns)
	refusedBy(t, "removing the label through pods", removeLabel(ctx, bad, ns, pod.Name), fence.PolicyQuarantine)
	refusedBy(t, "removing the label through pods/status", removeLabel(ctx, bad, ns, pod.Name, "status"), fence.PolicyQuarantine)
	_, err := bad.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"`+action.LabelQuarantine+`":"other"}}}`), metav1.PatchOptions{})
	refusedBy(t, "changing the label's value", err, fence.PolicyQuarantine)
	// Another label is the attacker's business: the fence is not RBAC.
	if _, err := bad.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("another label on the quarantined pod: %v, want allowed", err)
	}
	polName := action.PolicyName(string(pod.UID))
	pols := bad.NetworkingV1().NetworkPolicies(ns)
	refusedBy(t, "deleting kir's policy", pols.Delete(ctx, polName, metav1.DeleteOptions{}), fence.PolicyPolicies)
	_, err = pols.Patch(ctx, polName, types.MergePatchType, []byte(`{"spec":{"ingress":[{}]}}`), metav1.PatchOptions{})
	refusedBy(t, "opening kir's policy", err, fence.PolicyPolicies)

	if got := f.Pod(t, pod.Name); got.Labels[action.LabelQuarantine] != string(pod.UID) {
		t.Fatalf("the label is %q after the attack", got.Labels[action.LabelQuarantine])
	}
	// The namespace controller and the garbage collector are exempt.
	if err := cluster.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = kubetest.Eventually(ctx, 90*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		n, _ := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		t.Errorf("namespace %s still there behind the fence: %v\n%v", ns, err, n.Status.Conditions)
	}
}

// kir's ServiceAccount, bound to the shipped roles, cannot turn them
// against the cluster (a kube-system pod's image, a node's labels), and
// still contains with --detach, cordons, drains and releases.
func TestKirIsFencedAndStillWorks(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "kir", 2)
	ctx, ns, env := t.Context(), f.Namespace, kirEnv(t)
	sys := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "privileged-", Namespace: "kube-system"},
		Spec:       corev1.PodSpec{NodeName: probeNode, Containers: []corev1.Container{{Name: "c", Image: "registry.example/agent:1"}}},
	}
	sys, err := cluster.Client.CoreV1().Pods("kube-system").Create(ctx, sys, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Pods("kube-system").Delete(context.WithoutCancel(ctx), sys.Name, *metav1.NewDeleteOptions(0))
	})
	kc := env.Kube
	_, err = kc.CoreV1().Pods("kube-system").Patch(ctx, sys.Name, types.StrategicMergePatchType,
		[]byte(`{"spec":{"containers":[{"name":"c","image":"attacker.example/root:1"}]}}`), dryRun)
	refusedBy(t, "kir changing a kube-system pod's image", err, fence.PolicyKir)
	_, err = kc.CoreV1().Pods("kube-system").Patch(ctx, sys.Name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"app":"x"}}}`), dryRun)
	refusedBy(t, "kir labelling a kube-system pod", err, fence.PolicyKir)
	refusedBy(t, "kir labelling a node", labelNode(ctx, kc, f.Node), fence.PolicyKir)
	n := f.GetNode(t)
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: action.TaintKey, Effect: corev1.TaintEffectNoExecute})
	_, err = kc.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	refusedBy(t, "kir tainting a node NoExecute", err, fence.PolicyKir)

	target := f.Pods[0].Name
	pod := isolate(t, env, ns, target, true)
	if _, ok := pod.Labels["app"]; ok {
		t.Fatalf("--detach left the selector label: %v", pod.Labels)
	}
	kirPolicies(t, env, ns, pod)
	if _, err := contain.Cordon(ctx, env, contain.CordonParams{Nodes: []string{f.Node}}); err != nil {
		t.Fatalf("cordon as kir: %v", err)
	}
	if _, err := contain.Drain(ctx, env, contain.DrainParams{Node: action.NodeName(f.Node), Timeout: action.Duration(time.Minute)}); err != nil {
		t.Fatalf("drain as kir: %v", err)
	}
	if _, err := contain.Release(ctx, env, contain.ReleaseParams{Namespace: action.Namespace(ns), Name: action.PodName(target), Reattach: true}); err != nil {
		t.Fatalf("release as kir: %v", err)
	}
	if _, err := contain.ReleaseNode(ctx, env, contain.ReleaseNodeParams{Nodes: []string{f.Node}, Force: true}); err != nil {
		t.Fatalf("release node as kir: %v", err)
	}
	got := f.Pod(t, target)
	if _, ok := got.Labels[action.LabelQuarantine]; ok || got.Labels["app"] != "web" {
		t.Errorf("after release the labels are %v, want app=web back and no quarantine", got.Labels)
	}
	node := f.GetNode(t)
	if node.Spec.Unschedulable || slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == action.TaintKey }) {
		t.Errorf("node after release: unschedulable %v, taints %v", node.Spec.Unschedulable, node.Spec.Taints)
	}
}

// A responder (group kir:responders) releases a pod kir contained.
func TestResponderCanRelease(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "responder", 1)
	ctx, ns := t.Context(), f.Namespace
	pod := isolate(t, kirEnv(t), ns, f.Pods[0].Name, false)
	bindContain(t, ns, rbacv1.Subject{Kind: "Group", Name: "kir:responders", APIGroup: "rbac.authorization.k8s.io"},
		rbacv1.Subject{Kind: "Group", Name: "kir:outsiders", APIGroup: "rbac.authorization.k8s.io"})
	// Another user with the same roles is no responder.
	outsider := impersonate(t, "mallory", "kir:outsiders")
	refusedBy(t, "a user with kir-contain outside kir:responders removing the label", removeLabel(ctx, outsider, ns, pod.Name), fence.PolicyQuarantine)
	alice := impersonate(t, "alice", "kir:responders")
	env := action.Env{Kube: alice, Incident: "fence-test", Actor: "alice"}
	if _, err := contain.Release(ctx, env, contain.ReleaseParams{Namespace: action.Namespace(ns), Name: action.PodName(pod.Name)}); err != nil {
		t.Fatalf("release as a responder: %v", err)
	}
	if got := f.Pod(t, pod.Name); got.Labels[action.LabelQuarantine] != "" {
		t.Errorf("label still there after the responder's release: %v", got.Labels)
	}
}

// bindContain binds kir-contain to subjects in namespace ns.
func bindContain(t *testing.T, ns string, subjects ...rbacv1.Subject) {
	t.Helper()
	ctx := t.Context()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "contain", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "kir-contain"},
		Subjects:   subjects,
	}
	if _, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer learns bindings from a watch: wait until it has.
	for _, s := range subjects {
		spec := authorizationv1.SubjectAccessReviewSpec{
			User:               s.Name,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "patch", Resource: "pods"},
		}
		switch s.Kind {
		case "Group":
			spec.User, spec.Groups = "probe", []string{s.Name}
		case "ServiceAccount":
			spec.User = "system:serviceaccount:" + s.Namespace + ":" + s.Name
		}
		err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			r, err := cluster.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
			return err == nil && r.Status.Allowed, nil
		})
		if err != nil {
			t.Fatalf("the binding of kir-contain to %s %s never took effect: %v", s.Kind, s.Name, err)
		}
	}
}

// With protectDeletion, only a responder deletes a quarantined pod; the
// garbage collector then deletes kir's policy, which the pod owns.
func TestProtectDeletion(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "evidence", 1)
	ctx, ns, c := t.Context(), f.Namespace, cluster.Client
	pod := isolate(t, kirEnv(t), ns, f.Pods[0].Name, false)
	bad := attacker(t, ns)
	setProtectDeletion(t, "true")
	t.Cleanup(func() { setProtectDeletion(t, "false") })
	dry := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	var err error
	if err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		err = bad.CoreV1().Pods(ns).Delete(ctx, pod.Name, dry)
		return err != nil, nil
	}); err != nil {
		t.Fatal("protectDeletion never took effect")
	}
	refusedBy(t, "the attacker deleting the quarantined pod", err, fence.PolicyQuarantine)
	refusedBy(t, "kir deleting the quarantined pod", kirEnv(t).Kube.CoreV1().Pods(ns).Delete(ctx, pod.Name, dry), fence.PolicyQuarantine)
	bindContain(t, ns, rbacv1.Subject{Kind: "Group", Name: "kir:responders", APIGroup: "rbac.authorization.k8s.io"})
	if err := impersonate(t, "alice", "kir:responders").CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("a responder deleting the quarantined pod: %v", err)
	}
	err = kubetest.Eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.NetworkingV1().NetworkPolicies(ns).Get(ctx, action.PolicyName(string(pod.UID)), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the garbage collector did not delete kir's policy of the deleted pod: %v", err)
	}
}

func setProtectDeletion(t *testing.T, v string) {
	patch := []byte(`{"data":{"` + fence.KeyProtectDeletion + `":"` + v + `"}}`)
	if _, err := cluster.Client.CoreV1().ConfigMaps(kirNS).Patch(context.WithoutCancel(t.Context()), fence.ParamsName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Hostile pods (2,100 labels; ~262,000 bytes of annotations) get the
// policy's answer, not a cost-exceeded error: kir contains them and
// releases them, the attacker cannot lift their label, kir cannot slip a
// foreign label in.
func TestHostilePodsGetADefiniteAnswer(t *testing.T) {
	installed(t)
	f := cluster.NewFixture(t, "hostile", 0)
	ctx, ns, env := t.Context(), f.Namespace, kirEnv(t)
	bad := attacker(t, ns)
	labels := map[string]string{}
	for i := range 2100 {
		labels[fmt.Sprintf("l%04d.example.com/k%04d", i, i)] = strings.Repeat("v", 63)
	}
	annos := map[string]string{}
	for i := range 8 {
		// 8 × 32,750 = 262,000 bytes of values; the keys add ~100.
		annos[fmt.Sprintf("a%d", i)] = strings.Repeat("x", 32750)
	}
	for _, tc := range []struct {
		name          string
		labels, annos map[string]string
	}{
		{"labels", labels, nil},
		{"annotations", nil, annos},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "hostile-" + tc.name, Namespace: ns, Labels: tc.labels, Annotations: tc.annos},
				Spec:       corev1.PodSpec{NodeName: f.Node, Containers: []corev1.Container{{Name: "c", Image: "registry.example/x:1"}}},
			}
			if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			pod := isolate(t, env, ns, p.Name, false)
			refusedBy(t, "attacker removing the label", removeLabel(ctx, bad, ns, pod.Name), fence.PolicyQuarantine)
			refusedBy(t, "attacker removing the label through pods/status", removeLabel(ctx, bad, ns, pod.Name, "status"), fence.PolicyQuarantine)
			_, err := env.Kube.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"foreign":"x"}}}`), dryRun)
			refusedBy(t, "kir adding a foreign label", err, fence.PolicyKir)
			_, err = env.Kube.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(`{"metadata":{"annotations":{"foreign":"x"}}}`), dryRun)
			refusedBy(t, "kir adding a foreign annotation", err, fence.PolicyKir)
			if _, err := contain.Release(ctx, env, contain.ReleaseParams{Namespace: action.Namespace(ns), Name: action.PodName(pod.Name)}); err != nil {
				t.Fatalf("release as kir: %v", err)
			}
		})
	}
}

// Check, and kir doctor, report the fence installed, changed (a weakened
// policy, a narrowed binding) and missing. Runs last: it changes the
// fence, and puts it back.
func TestCheckAndDoctorReportTheFence(t *testing.T) {
	installed(t)
	ctx, c := t.Context(), cluster.Client
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cluster.WriteKubeconfig(kc, cluster.Config); err != nil {
		t.Fatal(err)
	}
	kir := kubetest.Kir{Kubeconfig: kc}
	states := func(t *testing.T) map[string]fence.State {
		t.Helper()
		rep, err := fence.Check(ctx, c, kirNS)
		if err != nil {
			t.Fatal(err)
		}
		r := kir.Run(t, "doctor", "-o", "json")
		var d struct{ Fence fence.Report }
		if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
			t.Fatalf("kir doctor -o json: exit %d: %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
		}
		if diff := cmp.Diff(rep, d.Fence); diff != "" {
			t.Errorf("kir doctor's fence differs from Check's (-check +doctor):\n%s", diff)
		}
		out := map[string]fence.State{}
		for _, s := range rep {
			out[s.Kind+"/"+s.Name] = s.State
		}
		return out
	}
	want := map[string]fence.State{}
	for _, p := range fence.Policies() {
		want["ValidatingAdmissionPolicy/"+p.Name] = fence.Installed
		want["ValidatingAdmissionPolicyBinding/"+p.Name] = fence.Installed
	}
	want["ConfigMap/"+kirNS+"/"+fence.ParamsName] = fence.Installed
	if diff := cmp.Diff(want, states(t)); diff != "" {
		t.Fatalf("as installed (-want +got):\n%s", diff)
	}
	// kir serve (the tamper guard) reads it with the shipped kir-fence-check.
	if rep, err := fence.Check(ctx, kirEnv(t).Kube, kirNS); err != nil || !rep.Intact() {
		t.Errorf("Check as kir-serve: %v, %v", rep, err)
	}

	tamperWithFence(t)
	want["ValidatingAdmissionPolicy/"+fence.PolicyQuarantine] = fence.Changed
	want["ValidatingAdmissionPolicyBinding/"+fence.PolicyPolicies] = fence.Changed
	want["ValidatingAdmissionPolicyBinding/"+fence.PolicyKir] = fence.Missing
	want["ConfigMap/"+kirNS+"/"+fence.ParamsName] = fence.Missing
	if diff := cmp.Diff(want, states(t)); diff != "" {
		t.Errorf("tampered (-want +got):\n%s", diff)
	}

	// Put it back as shipped.
	if err := c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, fence.PolicyQuarantine, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, fence.PolicyPolicies, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Create(ctx, "../deploy/components/admission/fence.yaml"); err != nil {
		t.Fatal(err)
	}
	if rep, err := fence.Check(ctx, c, kirNS); err != nil || !rep.Intact() {
		t.Errorf("reinstalled: %v %v", rep, err)
	}
}

// tamperWithFence weakens PolicyQuarantine, narrows PolicyPolicies'
// binding to no namespace, and deletes PolicyKir's binding and the
// parameters.
func tamperWithFence(t *testing.T) {
	t.Helper()
	ctx, c := t.Context(), cluster.Client
	vaps, bindings := c.AdmissionregistrationV1().ValidatingAdmissionPolicies(), c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	pol, err := vaps.Get(ctx, fence.PolicyQuarantine, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pol.Spec.Validations[0].Expression = "true"
	if _, err := vaps.Update(ctx, pol, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := bindings.Get(ctx, fence.PolicyPolicies, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"none": "x"}}}
	if _, err := bindings.Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := bindings.Delete(ctx, fence.PolicyKir, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().ConfigMaps(kirNS).Delete(ctx, fence.ParamsName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// kirPolicies: kir writes its own policy's annotations (kir-collect's
// capture key, as collect/node.go applies it), and no other policy.
func kirPolicies(t *testing.T, env action.Env, ns string, pod *corev1.Pod) {
	t.Helper()
	ctx, pols := t.Context(), env.Kube.NetworkingV1().NetworkPolicies(ns)
	name := action.PolicyName(string(pod.UID))
	apply := networkingv1ac.NetworkPolicy(name, ns).WithAnnotations(map[string]string{action.AnnotationCaptureKey: "00"})
	if _, err := pols.Apply(ctx, apply, metav1.ApplyOptions{FieldManager: action.FieldManagerCapture, Force: true}); err != nil {
		t.Errorf("kir annotating its policy with the capture key: %v", err)
	}
	other := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(ns).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	refusedBy(t, "kir deleting another's policy", pols.Delete(ctx, other.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}), fence.PolicyKir)
	open := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "kir-quarantine-open", Namespace: ns, Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}
	_, err := pols.Create(ctx, open, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	refusedBy(t, "kir creating an allow-all policy labelled as its own", err, fence.PolicyKir)
}
