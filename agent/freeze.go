package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/agent/container"
)

// FreezeRecord is what the agent froze of a pod (--freeze): its
// containers' processes, stopped by the cgroup freezer right after their
// volatile state was taken, so that an implant noticing the cut cannot
// wipe itself. Release thaws them.
type FreezeRecord struct {
	At         time.Time `json:"at"`
	Containers []string  `json:"containers"`
	Errors     []string  `json:"errors,omitempty"`
}

// freezeAsked reports whether the pod's quarantine policy asks for the
// freeze.
func freezeAsked(pol *networkingv1.NetworkPolicy) bool {
	return pol != nil && pol.Annotations[action.AnnotationFreeze] == action.FreezeYes
}

// freeze freezes every running container of the pod (never its sandbox:
// pause holds the namespaces and does nothing else).
func (a *Agent) freeze(ctx context.Context, pod *corev1.Pod) *FreezeRecord {
	f := &FreezeRecord{Containers: []string{}}
	defer func() { f.At = a.cfg.Now().UTC() }()
	found, err := container.Find(ctx, a.cfg.ProcRoot, pod)
	if err != nil {
		f.Errors = append(f.Errors, "finding the pod's containers: "+err.Error())
		return f
	}
	for _, c := range found.Containers {
		if c.Leader == 0 {
			continue // not running
		}
		if err := container.Freeze(ctx, a.cfg.HostRoot, c); err != nil {
			f.Errors = append(f.Errors, fmt.Sprintf("container %s: %v", c.Name, err))
			continue
		}
		f.Containers = append(f.Containers, c.Name)
	}
	return f
}

// thaw thaws the pod's containers: it was released, or deleted (then
// there is nothing left to thaw). Thawing what is not frozen does
// nothing, so the agent thaws on every release, frozen or not: an agent
// restarted since the freeze knows no better.
func (a *Agent) thaw(ctx context.Context, pod *corev1.Pod) {
	found, err := container.Find(ctx, a.cfg.ProcRoot, pod)
	if err != nil {
		a.cfg.Log.Warn("finding a released pod's containers to thaw them", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	for _, c := range found.Containers {
		if c.Leader == 0 {
			continue
		}
		if err := container.Thaw(ctx, a.cfg.HostRoot, c); err != nil {
			a.cfg.Log.Error("thawing a released pod's container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "err", err)
		}
	}
}
