// Command demoapp sets up and inspects the app `make demo` contains, in
// place of kubectl, which this machine does not have:
//
//	demoapp --namespace NS --replicas N   create NS, Deployment web and Service web; wait for N Running pods
//	        [--registry HOST:PORT]        first push a small random image to HOST:PORT/NS/web:1.0
//	                                      (plain HTTP), run it and print its digest reference; the pods
//	                                      ask kwok to report that as their imageID (testcluster's
//	                                      registry and stages)
//	demoapp --namespace NS --list         print "POD NODE" per Running pod
//	demoapp --namespace NS --show         per pod: kir's label, the policies that select it (evaluated
//	                                      as a CNI would), and each node's cordon and taints
//
// It reads KUBECONFIG.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/kubetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demoapp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	ns := flag.String("namespace", "shop", "namespace")
	replicas := flag.Int("replicas", 0, "create the app with this many replicas")
	list := flag.Bool("list", false, "list the Running pods")
	show := flag.Bool("show", false, "show kir's marks on pods, policies and nodes")
	registry := flag.String("registry", "", "with --replicas: push the app's image to this registry (`HOST:PORT`, plain HTTP) and run it from there")
	flag.Parse()
	kc, err := kube.New(kube.Options{})
	if err != nil {
		return err
	}
	c := kc.Interface
	switch {
	case *replicas > 0:
		app := image{ref: "nginx:1.27"}
		if *registry != "" {
			app.ref = *registry + "/" + *ns + "/web:1.0"
			digest, err := pushImage(ctx, app.ref)
			if err != nil {
				return err
			}
			app.id = digest.String()
			fmt.Println("image", app.id)
		}
		return create(ctx, c, *ns, int32(*replicas), app)
	case *list:
		pods, err := running(ctx, c, *ns)
		for _, p := range pods {
			fmt.Println(p.Name, p.Spec.NodeName)
		}
		return err
	case *show:
		return describe(ctx, c, *ns)
	}
	flag.Usage()
	return nil
}

// image is the image the app runs.
type image struct {
	// ref is the container's image.
	ref string
	// id, if set, is what kwok reports as the container's imageID, as a
	// kubelet would: the image by digest.
	id string
}

// pushImage pushes a small random image (two layers of a few KB) as ref and
// returns its reference by digest.
func pushImage(ctx context.Context, ref string) (name.Digest, error) {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Context().Digest(d.String()), nil
}

func create(ctx context.Context, c kubernetes.Interface, ns string, replicas int32, app image) error {
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("waiting for the default ServiceAccount: %w", err)
	}
	lbls := map[string]string{"app": "web"}
	var annotations map[string]string
	if app.id != "" {
		annotations = map[string]string{kubetest.ImageIDAnnotation: app.id}
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: app.ref}}},
			},
		},
	}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: lbls, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return kubetest.Eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := running(ctx, c, ns)
		return len(pods) == int(replicas), err
	})
}

func running(ctx context.Context, c kubernetes.Interface, ns string) ([]corev1.Pod, error) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func describe(ctx context.Context, c kubernetes.Interface, ns string) error {
	pods, err := running(ctx, c, ns)
	if err != nil {
		return err
	}
	pols, err := c.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	nodes := map[string]bool{}
	for _, p := range pods {
		var selecting []string
		record := map[string]string{} // kir's record is on its policy
		for _, pol := range pols.Items {
			sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
			if err == nil && sel.Matches(labels.Set(p.Labels)) {
				selecting = append(selecting, pol.Name)
				if pol.Name == action.PolicyName(string(p.UID)) {
					record = pol.Annotations
				}
			}
		}
		state := "serving (no policy selects it)"
		if len(selecting) > 0 {
			state = "ISOLATED by " + strings.Join(selecting, ", ")
		}
		fmt.Printf("pod %-24s %s\n", p.Name, state)
		if v := p.Labels[action.LabelQuarantine]; v != "" {
			fmt.Printf("    label %s=%s\n", action.LabelQuarantine, v)
			for _, k := range []string{action.AnnotationIncident, action.AnnotationContainedAt, action.AnnotationContainedBy} {
				fmt.Printf("    policy annotation %s=%s\n", k, record[k])
			}
		}
		nodes[p.Spec.NodeName] = true
	}
	for name := range nodes {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var taints []string
		for _, t := range n.Spec.Taints {
			taints = append(taints, fmt.Sprintf("%s:%s", t.Key, t.Effect))
		}
		fmt.Printf("node %s: unschedulable=%v taints=[%s]\n", name, n.Spec.Unschedulable, strings.Join(taints, " "))
	}
	return nil
}
