package kubetest

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// pollInterval is how often Eventually checks its condition.
const pollInterval = 50 * time.Millisecond

// Eventually calls f every 50ms until it returns true, returns an error, or
// timeout passes (or ctx ends). It calls f at once, so a condition that
// already holds costs no wait. f's ctx ends with the timeout.
//
// Tests wait with it instead of sleeping.
func Eventually(ctx context.Context, timeout time.Duration, f func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := f(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitRunningPods waits until exactly n pods match sel in ns, all Running
// and none being deleted, and returns them. A pod that has ended (Failed or
// Succeeded: evicted, say) will not run: it returns at once, saying why.
func WaitRunningPods(ctx context.Context, client kubernetes.Interface, ns, sel string, n int) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	err := Eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
				return false, fmt.Errorf("pod %s ended %s: %s: %s", p.Name, p.Status.Phase, p.Status.Reason, p.Status.Message)
			}
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		return len(pods) == n && len(list.Items) == n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %d running pods matching %q in %s: %w (have %d)", n, sel, ns, err, len(pods))
	}
	return pods, nil
}
