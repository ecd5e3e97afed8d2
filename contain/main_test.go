package contain_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kubetest"
)

// cluster is the real control plane (etcd, kube-apiserver,
// controller-manager, scheduler, kwok) every test in this package uses.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) { kubetest.Main(m, &cluster, kubetest.Options{}) }

// fixture is one test's world: its own namespace and kwok node, and a
// Deployment "web" of replicas pods pinned to that node, all Running.
type fixture struct{ *kubetest.Fixture }

func newFixture(t testing.TB, replicas int32) *fixture {
	t.Helper()
	return &fixture{cluster.NewFixture(t, "contain", replicas)}
}

func (f *fixture) env() action.Env {
	return action.Env{Kube: cluster.Client, Incident: "inc-test", Actor: "test-admin"}
}

// selectingPolicies evaluates every stored NetworkPolicy's pod selector
// against the stored pod's labels, as a CNI would, and returns the names
// of those that select it.
func selectingPolicies(t *testing.T, pod *corev1.Pod) []networkingv1.NetworkPolicy {
	t.Helper()
	list, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []networkingv1.NetworkPolicy
	for _, p := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			t.Fatalf("policy %s: %v", p.Name, err)
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

func hasQuarantineTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == action.TaintKey && t.Effect == corev1.TaintEffectNoSchedule {
			return true
		}
	}
	return false
}

// kirOnly returns m's kir.dev/ entries.
func kirOnly(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, action.AnnotationPrefix) {
			out[k] = v
		}
	}
	return out
}
