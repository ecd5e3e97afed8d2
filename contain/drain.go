package contain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/kubectl/pkg/drain"

	"kir.dev/kir/action"
)

// DrainParams are the parameters of Drain and contain.drain-node.
type DrainParams struct {
	Node    action.NodeName `json:"node" kir:"required" doc:"Node whose pods are evicted."`
	Timeout action.Duration `json:"timeout,omitempty" doc:"How long to wait for the evictions (default 5m)."`
	Force   bool            `json:"force,omitempty" doc:"Also evict pods that no controller manages (they are not recreated)."`
}

// Validate checks the parameters without I/O.
func (p DrainParams) Validate() error {
	if p.Node == "" {
		return errors.New("no node given")
	}
	if err := action.CheckParam("node", p.Node); err != nil {
		return err
	}
	if p.Timeout < 0 {
		return fmt.Errorf("timeout must not be negative")
	}
	return nil
}

// DrainOutput is the output of Drain.
type DrainOutput struct {
	Node string `json:"node"`
	// Evicted are the pods evicted (or, in a dry run, to be evicted).
	Evicted []string `json:"evicted"`
}

// Drain evicts the node's pods through the Eviction API, honouring
// PodDisruptionBudgets, with kubectl's own drain library. Quarantined pods
// are never evicted: the list excludes them at the API server. DaemonSet
// pods stay, as with kubectl drain --ignore-daemonsets. Cordon the node
// first, or evicted pods may come back to it.
func Drain(ctx context.Context, env action.Env, p DrainParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	timeout := time.Duration(p.Timeout)
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	h := &drain.Helper{
		Ctx:                 ctx,
		Client:              env.Kube,
		Force:               p.Force,
		GracePeriodSeconds:  -1,
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		Timeout:             timeout,
		PodSelector:         "!" + action.LabelQuarantine,
		Out:                 io.Discard,
		ErrOut:              io.Discard,
	}
	out := DrainOutput{Node: string(p.Node), Evicted: []string{}}
	list, errs := h.GetPodsForDeletion(string(p.Node))
	if len(errs) > 0 {
		return action.Result{Output: out}, fmt.Errorf("draining node %s: %w", p.Node, errors.Join(errs...))
	}
	pods := list.Pods()
	for _, pod := range pods {
		out.Evicted = append(out.Evicted, pod.Namespace+"/"+pod.Name)
	}
	res := action.Result{Output: out, Changed: len(pods) > 0}
	if w := list.Warnings(); w != "" {
		res.Warnings = append(res.Warnings, fmt.Sprintf("draining node %s: %s", p.Node, w))
	}
	if !env.DryRun.Persists() {
		for _, pod := range pods {
			res.Writes = append(res.Writes, action.Write{Verb: "evict", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name})
		}
		return res, nil
	}
	j := &action.WriteLog{Dry: env.DryRun}
	h.OnPodDeletionOrEvictionFinished = func(pod *corev1.Pod, _ bool, err error) {
		w := action.Write{Verb: "evict", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, Done: err == nil}
		if err != nil {
			w.Error = err.Error()
		}
		j.Add(w)
	}
	err := h.DeleteOrEvictPods(pods)
	res.Writes = j.Writes()
	if err != nil {
		return res, fmt.Errorf("draining node %s: %w", p.Node, err)
	}
	return res, nil
}
