package contain

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
)

// detacher removes from pods the labels their controller and the Services
// of their namespace select on. Without them the controller releases the
// pod and starts a clean replacement, and Services stop sending it traffic,
// while the pod itself stays alive for forensics.
type detacher struct {
	services []corev1.Service
	owners   sync.Map // owner UID → []string selector keys
}

func newDetacher(ctx context.Context, c kubernetes.Interface, ns string) (*detacher, error) {
	svcs, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Services in %s: %w", ns, err)
	}
	return &detacher{services: svcs.Items}, nil
}

// detach removes the selector labels from pod (as stored on the server) and
// records them in the pod's kir.dev/detached-labels annotation, in one JSON
// patch whose test operations make it fail rather than remove a label
// someone changed meanwhile. A pod already detached is left alone.
func (d *detacher) detach(ctx context.Context, env action.Env, j *action.WriteLog, pod *corev1.Pod) (removed map[string]string, changed bool, err error) {
	if rec := pod.Annotations[action.AnnotationDetachedLabels]; rec != "" {
		if err := json.Unmarshal([]byte(rec), &removed); err != nil {
			return nil, false, fmt.Errorf("reading annotation %s: %w", action.AnnotationDetachedLabels, err)
		}
		return removed, false, nil
	}
	keys, err := d.selectorKeys(ctx, env.Kube, pod)
	if err != nil {
		return nil, false, err
	}
	removed = map[string]string{}
	for _, k := range keys {
		if v, ok := pod.Labels[k]; ok && k != action.LabelQuarantine {
			removed[k] = v
		}
	}
	if len(removed) == 0 {
		return nil, false, nil
	}
	rec, _ := json.Marshal(removed)
	var ops []jsonPatchOp
	if pod.Annotations == nil {
		ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
	}
	for _, k := range sortedKeys(removed) {
		path := "/metadata/labels/" + escapePointer(k)
		ops = append(ops, jsonPatchOp{Op: "test", Path: path, Value: removed[k]}, jsonPatchOp{Op: "remove", Path: path})
	}
	ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations/" + escapePointer(action.AnnotationDetachedLabels), Value: string(rec)})
	body, _ := json.Marshal(ops)
	err = j.Do(action.Write{Verb: "patch", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, Body: ops}, func() (any, error) {
		return env.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, body,
			metav1.PatchOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()})
	})
	if err != nil {
		return nil, false, fmt.Errorf("removing selector labels: %w", err)
	}
	return removed, true, nil
}

// selectorKeys returns the label keys that the pod's controller and the
// Services selecting it use.
func (d *detacher) selectorKeys(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod) ([]string, error) {
	seen := map[string]bool{}
	if owner := metav1.GetControllerOf(pod); owner != nil {
		keys, err := d.ownerKeys(ctx, c, pod.Namespace, owner)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			seen[k] = true
		}
	}
	set := labels.Set(pod.Labels)
	for _, s := range d.services {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(set) {
			for k := range s.Spec.Selector {
				seen[k] = true
			}
		}
	}
	return sortedKeys(seen), nil
}

func (d *detacher) ownerKeys(ctx context.Context, c kubernetes.Interface, ns string, owner *metav1.OwnerReference) ([]string, error) {
	if v, ok := d.owners.Load(owner.UID); ok {
		return v.([]string), nil
	}
	var sel *metav1.LabelSelector
	var err error
	switch owner.Kind {
	case "ReplicaSet":
		rs, e := c.AppsV1().ReplicaSets(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			sel = rs.Spec.Selector
		}
	case "StatefulSet":
		s, e := c.AppsV1().StatefulSets(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			sel = s.Spec.Selector
		}
	case "DaemonSet":
		ds, e := c.AppsV1().DaemonSets(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			sel = ds.Spec.Selector
		}
	case "Job":
		job, e := c.BatchV1().Jobs(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			sel = job.Spec.Selector
		}
	case "ReplicationController":
		rc, e := c.CoreV1().ReplicationControllers(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		err = e
		if err == nil {
			sel = &metav1.LabelSelector{MatchLabels: rc.Spec.Selector}
		}
	default:
		return nil, nil // an owner kir does not know: only Services are considered
	}
	if err != nil {
		return nil, fmt.Errorf("getting the pod's %s %s: %w", owner.Kind, owner.Name, err)
	}
	var keys []string
	if sel != nil {
		for k := range sel.MatchLabels {
			keys = append(keys, k)
		}
		for _, e := range sel.MatchExpressions {
			keys = append(keys, e.Key)
		}
	}
	d.owners.Store(owner.UID, keys)
	return keys, nil
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// escapePointer escapes a map key for a JSON pointer (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
