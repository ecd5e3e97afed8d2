package tamper_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/tamper"
)

// The real control plane every test of this package shares.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) { kubetest.Main(m, &cluster, kubetest.Options{}) }

// unremembered is the guards' Options.Unremembered here: well above how
// long contain's memory may lag its policy on a loaded machine.
const unremembered = 5 * time.Second

// reaction is how fast the guard must restore what was lifted (the
// issue's acceptance: within 5 s).
const reaction = 5 * time.Second

func testLog() io.Writer {
	if os.Getenv("KIR_TEST_SHOW_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// findings collects what guards reported.
type findings struct {
	mu  sync.Mutex
	all []tamper.Finding
}

func (f *findings) add(_ context.Context, x tamper.Finding) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = append(f.all, x)
}

// of returns the findings of kind about the pod with uid.
func (f *findings) of(kind tamper.Kind, uid types.UID) []tamper.Finding {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tamper.Finding
	for _, x := range f.all {
		if x.Kind == kind && x.UID == string(uid) {
			out = append(out, x)
		}
	}
	return out
}

func (f *findings) about(uid types.UID) []tamper.Finding {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tamper.Finding
	for _, x := range f.all {
		if x.UID == string(uid) {
			out = append(out, x)
		}
	}
	return out
}

// startGuard runs a guard of the namespace watch, with kir's namespace
// kirNS, until the returned
// stop is called (or the test ends).
func startGuard(t *testing.T, kirNS, watch, identity string, f *findings) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tamper.Run(ctx, tamper.Options{
			Kube: cluster.Client, Namespace: kirNS, Watch: watch, Identity: identity, Resync: 2 * time.Second, Unremembered: unremembered,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond,
			Report: f.add, Log: slog.New(slog.NewTextHandler(testLog(), nil)).With("guard", identity),
		})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("tamper.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// quarantined makes a test's world: a namespace standing for kir's, an
// app's namespace with one pod, and that pod isolated as a responder
// would.
func quarantined(t *testing.T) (kir, app *kubetest.Fixture, pod corev1.Pod) {
	t.Helper()
	kir = cluster.NewFixture(t, "tamper-kir", 0)
	app = cluster.NewFixture(t, "tamper-app", 1)
	pod = app.Pods[0]
	isolate(t, kir.Namespace, pod)
	return kir, app, pod
}

// isolate contains pod as a responder would, kir's namespace kirNS.
func isolate(t *testing.T, kirNS string, pod corev1.Pod) {
	t.Helper()
	_, err := contain.Isolate(t.Context(), env(kirNS), contain.IsolateParams{
		Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name), AllowDNS: true,
	})
	if err != nil {
		t.Fatalf("isolating %s: %v", pod.Name, err)
	}
}

func env(kirNS string) action.Env {
	return action.Env{Kube: cluster.Client, Incident: "inc-tamper", Actor: "responder@example.com", KirNamespace: kirNS}
}

// waitGuarded waits until pod's quarantine is remembered in kir's
// namespace (contain writes the memory) and a guard leads there (it
// learns the memory as it takes the lead; release marks pods only where
// a guard runs or ran).
func waitGuarded(t *testing.T, kirNS string, pod corev1.Pod) {
	t.Helper()
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		leases := cluster.Client.CoordinationV1().Leases(kirNS)
		if _, err := leases.Get(ctx, tamper.MemoryName(pod.UID), metav1.GetOptions{}); err != nil {
			return false, nil
		}
		l, err := leases.Get(ctx, tamper.LeaseName, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", nil
	})
	if err != nil {
		t.Fatalf("the guard did not learn the quarantine of %s: %v", pod.Name, err)
	}
}

// attacker is a client of a ServiceAccount of the pod's namespace that may
// patch pods and write NetworkPolicies there (the workload's stolen
// token, given more than it should have).
func attacker(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	c := cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "attacker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "attacker"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch", "update"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "create", "patch", "update", "delete"}},
	}}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "attacker"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "attacker"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "attacker", Namespace: ns}}}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountConfig(ctx, ns, "attacker")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// attackerManager is the field manager the attacker's writes claim.
const attackerManager = "totally-kir"

func removeLabel(t *testing.T, kc kubernetes.Interface, pod corev1.Pod) {
	t.Helper()
	patch := []byte(`{"metadata":{"labels":{"` + action.LabelQuarantine + `":null}}}`)
	if _, err := kc.CoreV1().Pods(pod.Namespace).Patch(t.Context(), pod.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: attackerManager}); err != nil {
		t.Fatalf("the attacker removing the label of %s: %v", pod.Name, err)
	}
}

func deletePolicy(t *testing.T, kc kubernetes.Interface, pod corev1.Pod) {
	t.Helper()
	name := action.PolicyName(action.QuarantineValue(pod.UID))
	if err := kc.NetworkingV1().NetworkPolicies(pod.Namespace).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("the attacker deleting %s: %v", name, err)
	}
}

// labelled says whether pod carries its quarantine label.
func labelled(ctx context.Context, pod corev1.Pod) (bool, error) {
	p, err := cluster.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return p.Labels[action.LabelQuarantine] == action.QuarantineValue(pod.UID), nil
}

// policyOf returns pod's kir policy, nil when there is none.
func policyOf(ctx context.Context, pod corev1.Pod) (*networkingv1.NetworkPolicy, error) {
	p, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, action.PolicyName(action.QuarantineValue(pod.UID)), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return p, err
}

// waitContained waits until pod has its label and its policy as kir
// wrote it (want), and returns how long that took.
func waitContained(t *testing.T, pod corev1.Pod, want *networkingv1.NetworkPolicy, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	err := kubetest.Eventually(t.Context(), within, func(ctx context.Context) (bool, error) {
		ok, err := labelled(ctx, pod)
		if err != nil || !ok {
			last = "no quarantine label"
			return false, err
		}
		p, err := policyOf(ctx, pod)
		switch {
		case err != nil:
			return false, err
		case p == nil:
			last = "no policy"
			return false, nil
		}
		q, problems, err := contain.ReadQuarantine(p)
		if err != nil || len(problems) > 0 {
			last = "policy " + p.Name + " is not kir's as written"
			return false, nil
		}
		if drift := append(q.Drift(want), q.MetaDrift(p)...); len(drift) > 0 {
			last = "policy differs from the original: " + strings.Join(drift, "; ")
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pod %s not contained again within %s (%s): %v", pod.Name, within, last, err)
	}
	return time.Since(start)
}

// podEvents counts the Events with reason on pod.
func podEvents(t *testing.T, pod corev1.Pod, reason string) int {
	t.Helper()
	list, err := cluster.Client.CoreV1().Events(pod.Namespace).List(t.Context(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + pod.Name + ",reason=" + reason,
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}
