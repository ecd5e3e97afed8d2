package contain

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"kir.dev/kir/action"
)

// ErrNoMatch is returned when a selector matches no pod.
var ErrNoMatch = errors.New("no pod matches")

// Target names the pods an operation applies to: one by name, or every pod
// a label selector matches, in one namespace.
type Target struct {
	Namespace string
	Name      string
	Selector  string
}

func (t Target) validate() error {
	var errs []error
	if t.Namespace == "" {
		errs = append(errs, errors.New("a namespace is required"))
	}
	switch {
	case t.Name == "" && t.Selector == "":
		errs = append(errs, errors.New("give a pod name or a label selector"))
	case t.Name != "" && t.Selector != "":
		errs = append(errs, errors.New("give a pod name or a label selector, not both"))
	case t.Selector != "":
		if _, err := labels.Parse(t.Selector); err != nil {
			errs = append(errs, fmt.Errorf("invalid selector %q: %w", t.Selector, err))
		}
	}
	return errors.Join(errs...)
}

// pods fetches the target pods, sorted by name. A pod named by the target
// that the run found (env.Found) is not read again; isolation's writes
// carry its UID, so they fail rather than touch another pod that has taken
// its name since.
func (t Target) pods(ctx context.Context, env action.Env) ([]corev1.Pod, error) {
	c := env.Kube
	if t.Name != "" {
		if pod := env.Found.Pod(t.Namespace, t.Name); pod != nil {
			return []corev1.Pod{*pod}, nil
		}
		pod, err := c.CoreV1().Pods(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("getting pod %s/%s: %w", t.Namespace, t.Name, err)
		}
		return []corev1.Pod{*pod}, nil
	}
	list, err := c.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: t.Selector})
	if err != nil {
		return nil, fmt.Errorf("listing pods matching %q in %s: %w", t.Selector, t.Namespace, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("%w %q in namespace %s", ErrNoMatch, t.Selector, t.Namespace)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

// forEach runs f on every pod with at most parallel at once, and returns
// the errors of all of them, not the first only.
func forEach(ctx context.Context, pods []corev1.Pod, parallel int, f func(ctx context.Context, i int, pod *corev1.Pod) error) error {
	if parallel < 1 {
		parallel = 1
	}
	errs := make([]error, len(pods))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range pods {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(ctx, i, &pods[i])
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// nodesOf returns the distinct, sorted node names of the pods.
func nodesOf(pods []corev1.Pod) []string {
	seen := map[string]bool{}
	out := []string{} // [] in JSON, never null: playbooks take its size
	for _, p := range pods {
		if n := p.Spec.NodeName; n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
