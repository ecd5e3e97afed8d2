package contain_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/internal/kubetest"
)

// cluster is the real control plane (etcd, kube-apiserver,
// controller-manager, scheduler, kwok) every test in this package uses.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(asKirEnv) == "1" {
		// The test binary as the kir binary, for tests that must kill a
		// real kir process.
		os.Exit(cli.Run(context.Background(), append([]string{"kir"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(run(m))
}

// asKirEnv makes the test binary run kir's command line.
const asKirEnv = "KIR_TEST_AS_KIR"

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// kir's run journals go to a directory of this test binary's own.
	state, err := os.MkdirTemp("", "kir-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(state)
	os.Setenv("KIR_STATE_DIR", state)
	cluster, err = kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the test control plane: %v\n", err)
		return 1
	}
	defer cluster.Stop()
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "control plane logs:\n%s\n", cluster.Logs())
	}
	return code
}

var seq atomic.Int64

// fixture is one test's world: its own namespace and kwok node, and a
// Deployment of replicas pods pinned to that node, all Running.
type fixture struct {
	ns, node string
	pods     []corev1.Pod
}

func newFixture(t *testing.T, replicas int32) *fixture {
	t.Helper()
	ctx := t.Context()
	n := seq.Add(1)
	ns, err := cluster.Namespace(ctx, "contain")
	if err != nil {
		t.Fatal(err)
	}
	node := fmt.Sprintf("kir-test-node-%d-%d", os.Getpid()%10000, n)
	if _, err := cluster.AddNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	f := &fixture{ns: ns, node: node}
	if replicas > 0 {
		f.deploy(t, "web", replicas)
		f.pods = f.waitPods(t, "app=web", int(replicas))
	}
	return f
}

func (f *fixture) deploy(t *testing.T, app string, replicas int32) {
	t.Helper()
	lbls := map[string]string{"app": app, "tier": "frontend"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: f.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls, Annotations: map[string]string{"team": "shop"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/hostname": f.node},
					// Pods of a Deployment must survive kir's taint on
					// their node to be replaced there in tests.
					Tolerations: []corev1.Toleration{{Key: action.TaintKey, Operator: corev1.TolerationOpExists}, {Key: "node.kubernetes.io/unschedulable", Operator: corev1.TolerationOpExists}},
					Containers:  []corev1.Container{{Name: "web", Image: "registry.example/web:1"}},
				},
			},
		},
	}
	if _, err := cluster.Client.AppsV1().Deployments(f.ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitPods waits until exactly n pods matching sel are Running, and returns
// them.
func (f *fixture) waitPods(t *testing.T, sel string, n int) []corev1.Pod {
	t.Helper()
	pods, err := kubetest.WaitRunningPods(t.Context(), cluster.Client, f.ns, sel, n)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

func (f *fixture) env() action.Env {
	return action.Env{Kube: cluster.Client, Incident: "inc-test", Actor: "test-admin"}
}

func (f *fixture) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := cluster.Client.CoreV1().Pods(f.ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) getNode(t *testing.T) *corev1.Node {
	t.Helper()
	n, err := cluster.Client.CoreV1().Nodes().Get(t.Context(), f.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
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
