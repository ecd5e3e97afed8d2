package contain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
)

// ReleaseParams are the parameters of Release and contain.release-pod.
type ReleaseParams struct {
	Namespace   action.Namespace `json:"namespace" kir:"required" doc:"Namespace of the pod or pods."`
	Name        action.PodName   `json:"name,omitempty" doc:"Name of the pod to release. Give this or selector."`
	Selector    action.Selector  `json:"selector,omitempty" doc:"Label selector: release every pod it matches."`
	Reattach    bool             `json:"reattach,omitempty" doc:"Put back the labels --detach removed. The controller then re-adopts the pod and may delete a surplus replica."`
	Delete      bool             `json:"delete,omitempty" doc:"Delete the pod once released (the responder is done with it)."`
	Parallelism int              `json:"parallelism,omitempty" doc:"How many pods to release at once (default 32)."`
}

func (p ReleaseParams) target() Target {
	return Target{Namespace: string(p.Namespace), Name: string(p.Name), Selector: string(p.Selector)}
}

// Validate checks the parameters without I/O.
func (p ReleaseParams) Validate() error {
	return errors.Join(p.target().validate(), action.CheckParam("namespace", p.Namespace), action.CheckParam("name", p.Name), action.CheckParam("selector", p.Selector))
}

// ReleaseOutput is the output of Release.
type ReleaseOutput struct {
	Pods []ReleaseOutcome `json:"pods"`
	// Nodes are the nodes of the released pods, for release-node.
	Nodes []string `json:"nodes"`
	// Released lists the released pods as namespace/name.
	Released []string `json:"released"`
}

// ReleaseOutcome is what release did to one pod.
type ReleaseOutcome struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`
	// NotContained is true when kir had not contained the pod: nothing to do.
	NotContained bool `json:"notContained,omitempty"`
	// Policy is the quarantine policy deleted.
	Policy string `json:"policy,omitempty"`
	// Reattached are the labels put back.
	Reattached map[string]string `json:"reattached,omitempty"`
	// StillDetached are labels --detach removed and that stay removed
	// (release without --reattach); the record stays on the pod.
	StillDetached map[string]string `json:"stillDetached,omitempty"`
	Deleted       bool              `json:"deleted,omitempty"`
	Error         string            `json:"error,omitempty"`
}

// Release undoes Isolate: it deletes the quarantine policy and removes the
// label and annotations kir added, restoring the pod's labels and
// annotations exactly. A detached pod stays detached unless Reattach.
// Releasing a pod kir never contained changes nothing and is no error.
func Release(ctx context.Context, env action.Env, p ReleaseParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	pods, err := p.target().pods(ctx, env)
	if err != nil {
		return action.Result{}, err
	}
	j := &action.WriteLog{Dry: env.DryRun}
	out := ReleaseOutput{Pods: make([]ReleaseOutcome, len(pods)), Nodes: nodesOf(pods), Released: []string{}}
	changed := make([]bool, len(pods))
	warnings := make([]string, len(pods))
	parallel := p.Parallelism
	if parallel == 0 {
		parallel = 32
	}
	runErr := forEach(ctx, pods, parallel, func(ctx context.Context, i int, pod *corev1.Pod) error {
		o, err := releasePod(ctx, env, j, p, pod)
		if err != nil {
			o.Error = err.Error()
		}
		changed[i] = !o.NotContained && err == nil
		if changed[i] {
			warnings[i] = emitEvent(ctx, env, j, podRef(pod), "Released", "kir lifted the isolation of this pod")
		}
		out.Pods[i] = o
		return err
	})
	res := action.Result{Writes: j.Writes()}
	for i, o := range out.Pods {
		res.Changed = res.Changed || changed[i]
		if warnings[i] != "" {
			res.Warnings = append(res.Warnings, warnings[i])
		}
		if !o.NotContained && o.Error == "" {
			out.Released = append(out.Released, o.Namespace+"/"+o.Name)
		}
	}
	res.Output = out
	return res, runErr
}

func releasePod(ctx context.Context, env action.Env, j *action.WriteLog, p ReleaseParams, pod *corev1.Pod) (ReleaseOutcome, error) {
	id := pod.Namespace + "/" + pod.Name
	o := ReleaseOutcome{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Spec.NodeName}
	// The policy's name comes from the UID, never from the label's value,
	// which the pod's owner can set to name another pod's policy.
	value := action.QuarantineValue(pod.UID)
	labelled := pod.Labels[action.LabelQuarantine] == value
	record := subset(pod.Annotations, podAnnotations)
	if !labelled && len(record) == 0 {
		// A pod whose label never landed may still have its policy: a
		// fallback on its own labels, or one a failed run left behind.
		has, err := kirPolicy(ctx, env, pod.Namespace, action.PolicyName(value))
		if err != nil {
			return o, fmt.Errorf("releasing pod %s: %w", id, err)
		}
		if !has {
			// Label and policy may both have been lifted while no guard
			// ran: its memory would have the next guard put them back, and
			// a guard that runs would, but for the mark.
			if err := forgetMemory(ctx, env, j, pod, func() error { return markReleasing(ctx, env, j, pod) }); err != nil {
				return o, fmt.Errorf("releasing pod %s: %w", id, err)
			}
			o.NotContained = true
			return o, nil
		}
	}
	var detached map[string]string
	if rec := record[action.AnnotationDetachedLabels]; rec != "" {
		if err := json.Unmarshal([]byte(rec), &detached); err != nil {
			return o, fmt.Errorf("releasing pod %s: reading annotation %s: %w", id, action.AnnotationDetachedLabels, err)
		}
	}

	// The mark first, in kir's namespace: the tamper guard reads it before
	// it restores anything, so it does not undo what follows.
	if err := markReleasing(ctx, env, j, pod); err != nil {
		return o, fmt.Errorf("releasing pod %s: %w", id, err)
	}
	// Then the memory, before anything is lifted: a release that cannot
	// delete it stops with nothing changed, rather than leave a memory
	// from which a guard started later would put the quarantine back. A
	// guard that runs already heeds the mark.
	if err := forgetMemory(ctx, env, j, pod, nil); err != nil {
		return o, fmt.Errorf("releasing pod %s: %w", id, err)
	}
	// Policy first: once it is gone the pod talks again, whatever its labels.
	o.Policy = action.PolicyName(value)
	err := j.Do(action.Write{Verb: "delete", Kind: "NetworkPolicy", Namespace: pod.Namespace, Name: o.Policy}, func() (any, error) {
		err := env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Delete(ctx, o.Policy, metav1.DeleteOptions{DryRun: env.DryRun.Opts()})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	})
	if err != nil {
		return o, fmt.Errorf("releasing pod %s: deleting NetworkPolicy %s: %w", id, o.Policy, err)
	}
	if !labelled && len(record) == 0 {
		return releaseDelete(ctx, env, j, p, pod, o)
	}

	// A strategic merge patch removing exactly what kir added.
	lbls := map[string]any{}
	if labelled {
		lbls[action.LabelQuarantine] = nil
	}
	annos := map[string]any{}
	for k := range record {
		annos[k] = nil
	}
	if len(detached) > 0 {
		if p.Reattach {
			for k, v := range detached {
				lbls[k] = v
			}
			o.Reattached = detached
		} else {
			delete(annos, action.AnnotationDetachedLabels) // kept, so --reattach works later
			o.StillDetached = detached
		}
	}
	patch := map[string]any{"metadata": map[string]any{"labels": lbls, "annotations": annos}}
	body, _ := json.Marshal(patch)
	err = j.Do(action.Write{Verb: "patch", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, Body: patch}, func() (any, error) {
		return env.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, body,
			metav1.PatchOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()})
	})
	if err != nil {
		return o, fmt.Errorf("releasing pod %s: removing kir's label and annotations: %w", id, err)
	}

	return releaseDelete(ctx, env, j, p, pod, o)
}

// releaseDelete deletes the released pod, if asked to.
func releaseDelete(ctx context.Context, env action.Env, j *action.WriteLog, p ReleaseParams, pod *corev1.Pod, o ReleaseOutcome) (ReleaseOutcome, error) {
	if !p.Delete {
		return o, nil
	}
	uid := pod.UID
	err := j.Do(action.Write{Verb: "delete", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name}, func() (any, error) {
		return nil, env.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			DryRun: env.DryRun.Opts(), Preconditions: &metav1.Preconditions{UID: &uid},
		})
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return o, fmt.Errorf("releasing pod %s/%s: deleting it: %w", pod.Namespace, pod.Name, err)
	}
	o.Deleted = true
	return o, nil
}

// kirPolicy tells whether the NetworkPolicy name exists and is kir's.
func kirPolicy(ctx context.Context, env action.Env, ns, name string) (bool, error) {
	pol, err := env.Kube.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading NetworkPolicy %s: %w", name, err)
	}
	return pol.Labels[action.LabelManagedBy] == action.ManagedByKir, nil
}
