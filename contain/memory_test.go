package contain_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
)

// kirNamespace creates a namespace standing for kir's own.
func kirNamespace(t *testing.T) string {
	t.Helper()
	ns, err := cluster.Namespace(t.Context(), "kir")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.CoreV1().Namespaces().Delete(t.Context(), ns, metav1.DeleteOptions{}) })
	return ns
}

// memoryOf reads the memory of pod's quarantine in kirNS; ok false when
// there is none.
func memoryOf(t *testing.T, kirNS string, pod *corev1.Pod) (q contain.Quarantine, ok bool) {
	t.Helper()
	l, err := cluster.Client.CoordinationV1().Leases(kirNS).Get(t.Context(), contain.MemoryLease(pod.UID), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return q, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if l.Labels[action.LabelManagedBy] != action.ManagedByKir || l.Labels[contain.LabelComponent] != contain.ComponentMemory {
		t.Errorf("memory Lease %s labels %v: not marked as kir's memory", l.Name, l.Labels)
	}
	if q, err = contain.ReadMemory(l.Name, l.Annotations); err != nil {
		t.Fatal(err)
	}
	return q, true
}

// checkMemoryIsThePolicy checks that the memory of pod's quarantine is
// what its policy, as stored, holds: what the tamper guard restores is
// what kir wrote.
func checkMemoryIsThePolicy(t *testing.T, kirNS string, pod *corev1.Pod) contain.Quarantine {
	t.Helper()
	q, ok := memoryOf(t, kirNS, pod)
	if !ok {
		t.Fatalf("no memory of the quarantine of %s in %s", pod.Name, kirNS)
	}
	pol, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).Get(t.Context(), q.PolicyName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read, problems, err := contain.ReadQuarantine(pol)
	if err != nil || len(problems) > 0 {
		t.Fatalf("reading the stored policy: %v %v", err, problems)
	}
	if q.Namespace != pod.Namespace || q.Name != pod.Name || q.UID != pod.UID {
		t.Errorf("memory names pod %s/%s %s, want %s/%s %s", q.Namespace, q.Name, q.UID, pod.Namespace, pod.Name, pod.UID)
	}
	if drift := q.Drift(pol); len(drift) > 0 {
		t.Errorf("the stored policy drifts from the memory: %v", drift)
	}
	if !maps.Equal(q.Record, read.Record) || !maps.Equal(q.Selector, read.Selector) || q.Allow.DNS != read.Allow.DNS || !slices.Equal(q.Allow.EgressCIDRs, read.Allow.EgressCIDRs) {
		t.Errorf("memory %+v, policy holds %+v", q, read)
	}
	return q
}

func TestIsolateRemembersAndReleaseForgets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	kirNS := kirNamespace(t)
	env := f.env()
	env.KirNamespace = kirNS
	pod := f.Pod(t, f.Pods[0].Name)

	// Dry runs remember nothing.
	for _, dry := range []action.DryRun{action.DryRunServer, action.DryRunClient} {
		e := env
		e.DryRun = dry
		res, err := contain.Isolate(t.Context(), e, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
		if err != nil {
			t.Fatalf("dry run %s: %v", dry, err)
		}
		if !slices.ContainsFunc(res.Writes, func(w action.Write) bool { return w.Kind == "Lease" && w.Namespace == kirNS }) {
			t.Errorf("dry run %s: the memory is not among the writes: %+v", dry, res.Writes)
		}
		if _, ok := memoryOf(t, kirNS, pod); ok {
			t.Fatalf("dry run %s wrote the memory", dry)
		}
	}

	res, err := contain.Isolate(t.Context(), env, contain.IsolateParams{
		Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name),
		AllowDNS: true, AllowEgressCIDRs: []string{"10.20.0.0/16", "192.0.2.1/32"}, KeepSessions: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 { // the CNI's
		t.Errorf("warnings: %q", res.Warnings)
	}
	q := checkMemoryIsThePolicy(t, kirNS, pod)
	if !q.Allow.DNS || len(q.Allow.EgressCIDRs) != 2 || q.Record[action.AnnotationSessions] != action.SessionsKeep {
		t.Errorf("memory %+v lost the allow-list or the record", q)
	}

	// Contained again, the same memory; released, none.
	if _, err := contain.Isolate(t.Context(), env, contain.IsolateParams{
		Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name),
		AllowDNS: true, AllowEgressCIDRs: []string{"10.20.0.0/16", "192.0.2.1/32"}, KeepSessions: true,
	}); err != nil {
		t.Fatal(err)
	}
	checkMemoryIsThePolicy(t, kirNS, pod)
	release(t, env, contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
	if _, ok := memoryOf(t, kirNS, pod); ok {
		t.Fatal("released, and the memory of its quarantine stays: a guard started later would put it back")
	}

	// Where kir has no namespace, there is no guard to tell.
	env.KirNamespace = "kir-nowhere"
	res, err = contain.Isolate(t.Context(), env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[1].Name)})
	if err != nil || len(res.Warnings) != 1 {
		t.Errorf("without kir's namespace: err %v, warnings %q", err, res.Warnings)
	}
	release(t, env, contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[1].Name)})
}

func TestFallbackIsRemembered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	kirNS := kirNamespace(t)
	env := f.env()
	env.KirNamespace = kirNS
	denyQuarantineLabel(t, f)
	pod := f.Pod(t, f.Pods[0].Name)
	_, err := contain.Isolate(t.Context(), env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
	if !errors.Is(err, contain.ErrFallback) {
		t.Fatalf("Isolate with the label denied: %v, want ErrFallback", err)
	}
	q := checkMemoryIsThePolicy(t, kirNS, pod)
	if q.Labelled() || q.Record[action.AnnotationFallback] == "" {
		t.Errorf("memory of a fallback %+v: no selector or no reason", q)
	}
	release(t, env, contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
	if _, ok := memoryOf(t, kirNS, pod); ok {
		t.Fatal("released, and the memory stays")
	}
}

// A responder who may isolate but not write in kir's namespace still
// isolates the pod, and is told the guard will not restore it.
func TestIsolateWithoutTheMemoryWarns(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	kirNS := kirNamespace(t)
	ctx, c := t.Context(), cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(f.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "responder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "responder"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	}}
	if _, err := c.RbacV1().Roles(f.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings(f.Namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "responder"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "responder"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "responder", Namespace: f.Namespace}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// kir-contain's cluster-wide read of Leases (the node agents'), here
	// in kir's namespace only.
	readLeases := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-leases"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}},
	}}
	if _, err := c.RbacV1().Roles(kirNS).Create(ctx, readLeases, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings(kirNS).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-leases"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-leases"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "responder", Namespace: f.Namespace}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountConfig(ctx, f.Namespace, "responder")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := f.env()
	env.Kube, env.KirNamespace = kc, kirNS
	pod := f.Pod(t, f.Pods[0].Name)
	var res action.Result
	// The Role may take a moment to reach the authorizer.
	err = kubetest.Eventually(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
		res, err = contain.Isolate(ctx, env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		return true, err
	})
	if err != nil {
		t.Fatalf("isolating without kir's namespace: %v", err)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "tamper guard will not restore it") && strings.Contains(w, contain.MemoryLease(pod.UID))
	}) {
		t.Errorf("no warning that the guard does not know the quarantine: %q", res.Warnings)
	}
	if pols := selectingPolicies(t, f.Pod(t, pod.Name)); len(pols) != 1 {
		t.Errorf("policies selecting the pod: %d, want kir's", len(pols))
	}
	if _, ok := memoryOf(t, kirNS, pod); ok {
		t.Error("a memory was written without the right to")
	}

	// Another responder's containment wrote a memory: this one may not
	// delete it, so it releases nothing (a guard started later would put
	// the quarantine back from it).
	admin := f.env()
	admin.KirNamespace = kirNS
	if _, err := contain.Isolate(ctx, admin, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)}); err != nil {
		t.Fatal(err)
	}
	checkMemoryIsThePolicy(t, kirNS, pod)
	_, err = contain.Release(ctx, env, contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
	if err == nil || !strings.Contains(err.Error(), contain.MemoryLease(pod.UID)) {
		t.Fatalf("release without the right to delete the memory: %v, want an error naming it", err)
	}
	if got := f.Pod(t, pod.Name); got.Labels[action.LabelQuarantine] == "" || len(selectingPolicies(t, got)) != 1 {
		t.Errorf("a release that stopped lifted the quarantine: labels %v", got.Labels)
	}
	checkMemoryIsThePolicy(t, kirNS, pod)
	// Whoever may (here, the admin) releases it.
	release(t, admin, contain.ReleaseParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(pod.Name)})
}
