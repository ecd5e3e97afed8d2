package collect_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kir.dev/kir/internal/kubetest"
)

var seq atomic.Int64

// world is one test's namespace and node, and what it created there.
type world struct {
	ns, node string
	// marker is the value of every Secret key the test planted: it must
	// appear in no collected file.
	marker string
}

func newWorld(t *testing.T, prefix string) *world {
	t.Helper()
	ctx := t.Context()
	ns, err := cluster.Namespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled during cleanup.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cluster.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	node := fmt.Sprintf("collect-node-%d-%d", os.Getpid()%10000, seq.Add(1))
	if _, err := cluster.AddNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return &world{ns: ns, node: node, marker: "kir-marker-" + hex.EncodeToString(b)}
}

// create creates every object, failing the test on the first error.
func create(t *testing.T, fns ...func(context.Context) error) {
	t.Helper()
	for _, f := range fns {
		if err := f(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func ignoreObject[T any](_ T, err error) error { return err }

// webApp creates the scene of the main test: a Deployment "web" of one
// pod (an init container, containers "app" and "side") running as
// ServiceAccount web-sa, with a Service and NetworkPolicies, RBAC, two
// ConfigMaps and a Secret it mounts and reads into its environment, plus
// objects that must not be collected ("other"). It returns the pod,
// Running, with an ephemeral container "debugger" added.
func (w *world) webApp(t *testing.T) *corev1.Pod {
	t.Helper()
	c := cluster.Client
	ns := w.ns
	labels := map[string]string{"app": "web", "tier": "frontend"}
	other := map[string]string{"app": "other"}
	dockerConfig := fmt.Sprintf(`{"auths":{%q:{"username":"puller","password":%q}}}`, reg, w.marker)
	create(t,
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web-sa"}}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "web-secret"},
				StringData: map[string]string{"password": w.marker, "api-key": w.marker + "-2"},
			}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "web-pull"},
				Type:       corev1.SecretTypeDockerConfigJson,
				StringData: map[string]string{corev1.DockerConfigJsonKey: dockerConfig},
			}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "web-config"}, Data: map[string]string{"nginx.conf": "server {}"},
			}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "web-env"}, Data: map[string]string{"MODE": "prod"},
			}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "other-config"},
			}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().Services(ns).Create(ctx, service("web", labels), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().Services(ns).Create(ctx, service("other", other), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.NetworkingV1().NetworkPolicies(ns).Create(ctx, policy("web-policy", map[string]string{"tier": "frontend"}), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.NetworkingV1().NetworkPolicies(ns).Create(ctx, policy("default-deny", nil), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.NetworkingV1().NetworkPolicies(ns).Create(ctx, policy("other-policy", other), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: "web-reader"},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}},
			}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.RbacV1().RoleBindings(ns).Create(ctx, binding("web-reader", "Role", "web-reader",
				rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "web-sa"}), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.RbacV1().RoleBindings(ns).Create(ctx, binding("all-sa-view", "ClusterRole", "view",
				rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + ns}), metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.RbacV1().RoleBindings(ns).Create(ctx, binding("other-edit", "ClusterRole", "edit",
				rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}), metav1.CreateOptions{}))
		},
	)

	annotations := map[string]string{
		kubetest.ImageIDAnnotation:               appImage.String(),
		kubetest.ImageIDAnnotation + ".init":     "docker-pullable://" + appImage.String(),
		kubetest.ImageIDAnnotation + ".side":     multiImage.DigestStr(),
		kubetest.ImageIDAnnotation + ".debugger": appImage.String(),
	}
	secretEnv := corev1.EnvVar{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "password",
	}}}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					NodeSelector:       map[string]string{"kubernetes.io/hostname": w.node},
					ServiceAccountName: "web-sa",
					ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "web-pull"}},
					InitContainers:     []corev1.Container{{Name: "init", Image: reg + "/test/app:1"}},
					Containers: []corev1.Container{
						{
							Name: "app", Image: reg + "/test/app:1",
							Env:     []corev1.EnvVar{secretEnv},
							EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-env"}}}},
							VolumeMounts: []corev1.VolumeMount{
								{Name: "config", MountPath: "/etc/web"},
								{Name: "secret", MountPath: "/run/secrets/web"},
							},
						},
						{Name: "side", Image: reg + "/test/multi:1"},
					},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"},
						}}},
						{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName: "web-secret",
							Items:      []corev1.KeyToPath{{Key: "password", Path: "db/password"}},
						}}},
					},
				},
			},
		},
	}
	if _, err := c.AppsV1().Deployments(ns).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := w.waitPod(t, "app=web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: reg + "/test/app:1"},
		TargetContainerName:      "app",
	}}
	if _, err := c.CoreV1().Pods(ns).UpdateEphemeralContainers(t.Context(), pod.Name, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return w.waitPod(t, "app=web", func(p *corev1.Pod) bool { return len(p.Status.EphemeralContainerStatuses) == 1 })
}

// simplePod creates a bare pod with one container "app" whose image ID
// is imageID (none when empty), and waits until it runs.
func (w *world) simplePod(t *testing.T, name, image, imageID string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pod": name}},
		Spec: corev1.PodSpec{
			NodeName:   w.node,
			Containers: []corev1.Container{{Name: "app", Image: image}},
		},
	}
	if imageID != "" {
		pod.Annotations = map[string]string{kubetest.ImageIDAnnotation: imageID}
	}
	if _, err := cluster.Client.CoreV1().Pods(w.ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return w.waitPod(t, "pod="+name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
}

// waitPod waits until the one pod sel matches satisfies ok.
func (w *world) waitPod(t *testing.T, sel string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		if len(list.Items) != 1 {
			return false, nil
		}
		got = &list.Items[0]
		return ok(got), nil
	})
	if err != nil {
		t.Fatalf("waiting for the pod %s in %s: %v (last seen: %+v)", sel, w.ns, err, got)
	}
	return got
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

func policy(name string, selector map[string]string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selector},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

func binding(name, roleKind, role string, subject rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
}
