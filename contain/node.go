package contain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"

	"kir.dev/kir/action"
)

// CordonParams are the parameters of Cordon and of contain.cordon-node.
type CordonParams struct {
	Nodes   []string `json:"nodes" kir:"required" doc:"Nodes to cordon."`
	NoTaint bool     `json:"noTaint,omitempty" doc:"Cordon only; do not add the kir.dev/quarantine:NoSchedule taint."`
}

// Validate checks the parameters without I/O.
func (p CordonParams) Validate() error { return validNodes(p.Nodes) }

func validNodes(nodes []string) error {
	if len(nodes) == 0 {
		return errors.New("no node given")
	}
	for _, n := range nodes {
		if n == "" {
			return errors.New("empty node name")
		}
		if err := action.CheckString(action.TypeNodeName, n); err != nil {
			return fmt.Errorf("parameter \"nodes\": %w", err)
		}
	}
	return nil
}

// NodeOutcome is what happened to one node.
type NodeOutcome struct {
	Name string `json:"name"`
	// Cordoned is true when kir cordoned the node (now or before); false
	// when it was already unschedulable for another reason.
	Cordoned bool `json:"cordoned"`
	// Tainted is true when the node carries kir's quarantine taint.
	Tainted bool `json:"tainted"`
	// Released is true when release lifted kir's cordon and taint.
	Released bool `json:"released,omitempty"`
	// ContainedPods still on the node keep it quarantined on release.
	ContainedPods []string `json:"containedPods,omitempty"`
	// Changed is true when this run changed the node.
	Changed bool   `json:"changed"`
	Error   string `json:"error,omitempty"`
}

// NodesOutput is the output of the node operations.
type NodesOutput struct {
	Nodes []NodeOutcome `json:"nodes"`
}

// QuarantineTaint is the taint kir adds to the node of a contained pod.
func QuarantineTaint() corev1.Taint {
	return corev1.Taint{Key: action.TaintKey, Value: "true", Effect: corev1.TaintEffectNoSchedule}
}

// Cordon marks nodes unschedulable and taints them, recording on each node
// whether kir cordoned it, so release uncordons only what kir cordoned.
func Cordon(ctx context.Context, env action.Env, p CordonParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	j := &action.WriteLog{Dry: env.DryRun}
	now := env.Now().UTC().Format(time.RFC3339)
	return eachNode(ctx, env, j, p.Nodes, func(node *corev1.Node, o *NodeOutcome) (bool, error) {
		ch := false
		if !node.Spec.Unschedulable {
			node.Spec.Unschedulable = true
			setAnnotation(node, action.AnnotationCordoned, "true")
			ch = true
		}
		o.Cordoned = node.Annotations[action.AnnotationCordoned] == "true"
		if !p.NoTaint && !hasTaint(node) {
			node.Spec.Taints = append(node.Spec.Taints, QuarantineTaint())
			ch = true
		}
		o.Tainted = hasTaint(node)
		if ch {
			for k, v := range map[string]string{action.AnnotationIncident: env.Incident, action.AnnotationContainedAt: now, action.AnnotationContainedBy: env.Actor} {
				if node.Annotations[k] == "" {
					setAnnotation(node, k, v)
				}
			}
		}
		return ch, nil
	}, "Quarantined", "kir cordoned and tainted this node")
}

// ReleaseNodeParams are the parameters of ReleaseNode and contain.release-node.
type ReleaseNodeParams struct {
	Nodes        []string `json:"nodes" kir:"required" doc:"Nodes to release."`
	Force        bool     `json:"force,omitempty" doc:"Release the node even while contained pods remain on it."`
	ReleasedPods []string `json:"releasedPods,omitempty" doc:"Pods (namespace/name) released in the same run: not counted as still contained, so that a dry run shows the node's release too."`
}

// Validate checks the parameters without I/O.
func (p ReleaseNodeParams) Validate() error { return validNodes(p.Nodes) }

// ReleaseNode removes kir's taint and, when kir cordoned the node, uncordons
// it, but only once no contained pod remains on it (unless forced). A node
// someone else cordoned stays cordoned.
func ReleaseNode(ctx context.Context, env action.Env, p ReleaseNodeParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	j := &action.WriteLog{Dry: env.DryRun}
	return eachNode(ctx, env, j, p.Nodes, func(node *corev1.Node, o *NodeOutcome) (bool, error) {
		o.Cordoned, o.Tainted = node.Annotations[action.AnnotationCordoned] == "true", hasTaint(node)
		if !o.Tainted && len(kirAnnotations(node.Annotations)) == 0 {
			return false, nil // kir never touched it
		}
		remaining, err := containedPodsOn(ctx, env, node.Name, p.ReleasedPods)
		if err != nil {
			return false, err
		}
		o.ContainedPods = remaining
		if len(remaining) > 0 && !p.Force {
			return false, nil
		}
		if o.Cordoned {
			node.Spec.Unschedulable = false
		}
		node.Spec.Taints = slices.DeleteFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == action.TaintKey })
		for k := range kirAnnotations(node.Annotations) {
			delete(node.Annotations, k)
		}
		o.Cordoned, o.Tainted, o.Released = false, false, true
		return true, nil
	}, "Released", "kir lifted its quarantine of this node")
}

// containedPodsOn lists the contained pods on a node, except those named in
// except (namespace/name).
func containedPodsOn(ctx context.Context, env action.Env, node string, except []string) ([]string, error) {
	sel, _ := labels.Parse(action.LabelQuarantine)
	list, err := env.Kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		LabelSelector: sel.String(),
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing contained pods on node %s: %w", node, err)
	}
	var out []string
	for _, p := range list.Items {
		if id := p.Namespace + "/" + p.Name; !slices.Contains(except, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// eachNode runs a read-modify-write of every node, retried on conflict, and
// records an Event on each node it changes.
func eachNode(ctx context.Context, env action.Env, j *action.WriteLog, names []string,
	mutate func(*corev1.Node, *NodeOutcome) (bool, error), reason, message string) (action.Result, error) {
	out := NodesOutput{Nodes: []NodeOutcome{}}
	res := action.Result{}
	var errs []error
	for _, name := range names {
		o := NodeOutcome{Name: name}
		var node *corev1.Node
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("getting node %s: %w", name, err)
			}
			ch, err := mutate(n, &o)
			if err != nil || !ch {
				return err
			}
			o.Changed, node = true, n
			return j.Do(action.Write{Verb: "update", Kind: "Node", Name: name, Body: nodePatchView(n)}, func() (any, error) {
				return env.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()})
			})
		})
		if err != nil {
			o.Error = err.Error()
			errs = append(errs, err)
		} else if o.Changed {
			res.Changed = true
			if w := emitEvent(ctx, env, j, nodeRef(node), reason, message); w != "" {
				res.Warnings = append(res.Warnings, w)
			}
		}
		if len(o.ContainedPods) > 0 && !o.Released {
			res.Warnings = append(res.Warnings, fmt.Sprintf("node %s stays quarantined: contained pods remain on it: %v", name, o.ContainedPods))
		}
		out.Nodes = append(out.Nodes, o)
	}
	res.Output, res.Writes = out, j.Writes()
	return res, errors.Join(errs...)
}

// nodePatchView is what a node update changes, for the record: the whole
// node object would bury it.
func nodePatchView(n *corev1.Node) map[string]any {
	return map[string]any{
		"unschedulable": n.Spec.Unschedulable,
		"taints":        n.Spec.Taints,
		"annotations":   kirAnnotations(n.Annotations),
	}
}

func hasTaint(n *corev1.Node) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == action.TaintKey })
}

func setAnnotation(n *corev1.Node, k, v string) {
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[k] = v
}
