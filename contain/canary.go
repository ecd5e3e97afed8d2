package contain

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
)

// CanaryParams say where and how to probe a node's enforcement.
type CanaryParams struct {
	// Node is the node to probe.
	Node string
	// Image is the canary's image: it only has to stay up (a pause image).
	Image string
	// Timeout bounds the wait for the agent's confirmation (Confirm).
	Timeout time.Duration
}

// DefaultCanaryImage is the canary's image unless told otherwise.
const DefaultCanaryImage = "registry.k8s.io/pause:3.10"

// Canary runs the enforcement probe on demand: it starts a canary pod on
// the node, in kir's namespace, isolates it as kir contain would, waits
// for the node agent's confirmation, then releases and deletes it. Its
// confirmation says whether the node enforces NetworkPolicy, and how
// fast. The canary is deleted whatever happens.
func Canary(ctx context.Context, env action.Env, p CanaryParams) (Confirmation, error) {
	env = env.Defaults()
	if p.Node == "" {
		return Confirmation{}, errors.New("canary: a node is required")
	}
	if p.Image == "" {
		p.Image = DefaultCanaryImage
	}
	pods := env.Kube.CoreV1().Pods(env.KirNamespace)
	pod, err := pods.Create(ctx, canaryPod(p), metav1.CreateOptions{FieldManager: action.FieldManager})
	if err != nil {
		return Confirmation{}, fmt.Errorf("creating the canary pod in %s: %w", env.KirNamespace, err)
	}
	defer func() {
		// Not ctx: the canary goes even when the probe was interrupted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = Release(dctx, env, ReleaseParams{Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name), Delete: true})
		_ = pods.Delete(dctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}()
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.Phase == corev1.PodRunning && got.Status.PodIP != "", nil
	})
	if err != nil {
		return Confirmation{}, fmt.Errorf("canary pod %s/%s never ran on node %s: %w", pod.Namespace, pod.Name, p.Node, err)
	}
	res, err := Isolate(ctx, env, IsolateParams{Namespace: action.Namespace(pod.Namespace), Name: action.PodName(pod.Name)})
	if err != nil {
		return Confirmation{}, fmt.Errorf("isolating the canary: %w", err)
	}
	iso, _ := res.Output.(IsolateOutput)
	res, err = Confirm(ctx, env, ConfirmParams{Pods: iso.Pods, Timeout: p.Timeout.String()})
	out, _ := res.Output.(ConfirmOutput)
	if len(out.Pods) != 1 {
		return Confirmation{}, fmt.Errorf("confirming the canary's isolation: %w", err)
	}
	return out.Pods[0], nil
}

// canaryPod is a pod that stays up and does nothing, on the node whatever
// its taints (a quarantined node is tainted), admitted by the restricted
// Pod Security level of kir's namespace.
func canaryPod(p CanaryParams) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "kir-canary-",
			Labels:       map[string]string{action.LabelManagedBy: action.ManagedByKir, "app.kubernetes.io/name": "kir-canary"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65535),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "canary", Image: p.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}
