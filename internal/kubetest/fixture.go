package kubetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
)

// barePodsTimeout bounds BarePods' wait: a thousand pods take a while.
const barePodsTimeout = 2 * time.Minute

// Fixture is one test's world on a shared cluster: a namespace and a kwok
// node of its own, and the pods of the Deployment it was made with.
type Fixture struct {
	// Namespace is the test's namespace, Node its kwok node.
	Namespace, Node string
	// Pods are the Running pods of the Deployment "web" NewFixture made.
	Pods []corev1.Pod

	c *Cluster
}

// NewFixture gives a test its own namespace (prefix-<random>) and kwok
// node and, for replicas > 0, the Deployment "web" of that many pods on
// the node (see Deployment), and returns once they all run.
func (c *Cluster) NewFixture(t testing.TB, prefix string, replicas int32) *Fixture {
	t.Helper()
	ns, err := c.Namespace(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{Namespace: ns, Node: ns + "-node", c: c}
	if _, err := c.AddNode(t.Context(), f.Node); err != nil {
		t.Fatal(err)
	}
	if replicas > 0 {
		f.Pods = f.Deploy(t, Deployment{Name: "web", Replicas: replicas})
	}
	return f
}

// Deployment is a Deployment for Fixture.Deploy. Its pods are labelled
// app=<Name> and tier=frontend and annotated team=shop, run one container
// <Name> of the image registry.example/<Name>:1 on the fixture's node, and
// tolerate kir's quarantine taint and the cordon's, so that the Deployment
// replaces them on their node while it is contained.
type Deployment struct {
	// Name is the Deployment's name, and its pods' app label.
	Name string
	// Replicas is how many pods it runs; 0 means 1.
	Replicas int32
	// ServiceAccount is the pods' ServiceAccount; empty: "default".
	ServiceAccount string
	// Template, when set, changes the pod template before the Deployment
	// is created: environment, volumes, annotations.
	Template func(*corev1.PodTemplateSpec)
}

// Deploy creates d in the fixture's namespace and returns its pods once
// they all run.
func (f *Fixture) Deploy(t testing.TB, d Deployment) []corev1.Pod {
	t.Helper()
	replicas := d.Replicas
	if replicas == 0 {
		replicas = 1
	}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      map[string]string{"app": d.Name, "tier": "frontend"},
			Annotations: map[string]string{"team": "shop"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: d.ServiceAccount,
			NodeSelector:       map[string]string{"kubernetes.io/hostname": f.Node},
			Tolerations: []corev1.Toleration{
				{Key: action.TaintKey, Operator: corev1.TolerationOpExists},
				{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists},
			},
			Containers: []corev1.Container{{Name: d.Name, Image: "registry.example/" + d.Name + ":1"}},
		},
	}
	if d.Template != nil {
		d.Template(&tmpl)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: f.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": d.Name}},
			Template: tmpl,
		},
	}
	if _, err := f.c.Client.AppsV1().Deployments(f.Namespace).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Deployment %s/%s: %v", f.Namespace, d.Name, err)
	}
	return f.WaitPods(t, "app="+d.Name, int(replicas))
}

// WaitPods waits until exactly n pods of the fixture's namespace match
// sel, all Running, and returns them.
func (f *Fixture) WaitPods(t testing.TB, sel string, n int) []corev1.Pod {
	t.Helper()
	pods, err := WaitRunningPods(t.Context(), f.c.Client, f.Namespace, sel, n)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// BarePods creates n pods of no controller, <app>-0000 and on, labelled
// app=<app>, on the fixture's node, and waits until they all run: what
// benchmarks contain by the thousand.
func (f *Fixture) BarePods(t testing.TB, app string, n int) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%04d", app, i), Namespace: f.Namespace, Labels: map[string]string{"app": app}},
				Spec: corev1.PodSpec{
					NodeName:   f.Node,
					Containers: []corev1.Container{{Name: "c", Image: "registry.example/" + app + ":1"}},
				},
			}
			if _, err := f.c.Client.CoreV1().Pods(f.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	running := 0
	err := Eventually(ctx, barePodsTimeout, func(ctx context.Context) (bool, error) {
		list, err := f.c.Client.CoreV1().Pods(f.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err
		}
		running = 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == n, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d pods app=%s to run (%d do): %v", n, app, running, err)
	}
}

// Pod returns the pod name of the fixture's namespace as stored now.
func (f *Fixture) Pod(t testing.TB, name string) *corev1.Pod {
	t.Helper()
	p, err := f.c.Client.CoreV1().Pods(f.Namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// GetNode returns the fixture's node as stored now.
func (f *Fixture) GetNode(t testing.TB) *corev1.Node {
	t.Helper()
	n, err := f.c.Client.CoreV1().Nodes().Get(t.Context(), f.Node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Snapshot is what containing a pod may change, on the pod, its node and
// the namespace's NetworkPolicies: tests compare it before and after.
type Snapshot struct {
	Labels, Annotations map[string]string
	Policies            []string
	PolicyVersions      []string
	Unschedulable       bool
	Taints              []corev1.Taint
	// NodeAnnotations are the node's kir.dev/ annotations.
	NodeAnnotations map[string]string
}

// Snapshot returns the Snapshot of pod, in the fixture's namespace and on
// its node, as stored now.
func (f *Fixture) Snapshot(t testing.TB, pod string) Snapshot {
	t.Helper()
	p := f.Pod(t, pod)
	n := f.GetNode(t)
	s := Snapshot{Labels: p.Labels, Annotations: p.Annotations, Unschedulable: n.Spec.Unschedulable, NodeAnnotations: map[string]string{}}
	for k, v := range n.Annotations {
		if strings.HasPrefix(k, action.AnnotationPrefix) {
			s.NodeAnnotations[k] = v
		}
	}
	for _, t := range n.Spec.Taints {
		// The node lifecycle controller mirrors spec.unschedulable into a
		// node.kubernetes.io/unschedulable taint, asynchronously: not kir's.
		if !strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			s.Taints = append(s.Taints, t)
		}
	}
	list, err := f.c.Client.NetworkingV1().NetworkPolicies(f.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range list.Items {
		s.Policies = append(s.Policies, pol.Name)
		s.PolicyVersions = append(s.PolicyVersions, pol.ResourceVersion)
	}
	return s
}
