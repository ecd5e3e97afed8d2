package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	var frozen []container.Container
	for _, c := range found.Containers {
		if c.Leader == 0 {
			continue // not running
		}
		if err := container.Freeze(ctx, a.cfg.HostRoot, c); err != nil {
			f.Errors = append(f.Errors, fmt.Sprintf("container %s: %v", c.Name, err))
			continue
		}
		frozen = append(frozen, c)
		f.Containers = append(f.Containers, c.Name)
		// Recorded at once: an agent that restarts after the pod's
		// release no longer sees the pod, only this.
		if err := a.recordFrozen(pod, frozen); err != nil {
			f.Errors = append(f.Errors, "recording the freeze for a later thaw: "+err.Error())
		}
	}
	return f
}

// frozenFile, in a quarantine's capture directory, lists the cgroups the
// agent froze, so that an agent started after the pod's release thaws
// them (pruneCaptures).
const frozenFile = "frozen.json"

func (a *Agent) recordFrozen(pod *corev1.Pod, frozen []container.Container) error {
	if a.cfg.CaptureDir == "" {
		return errors.New("the agent keeps no state (no --capture-dir)")
	}
	dir := filepath.Join(a.cfg.CaptureDir, action.QuarantineValue(pod.UID))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	raw, err := json.Marshal(frozen)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, frozenFile+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, frozenFile))
}

// thawRecorded thaws what the quarantine's frozenFile lists.
func (a *Agent) thawRecorded(ctx context.Context, quarantine string) {
	raw, err := os.ReadFile(filepath.Join(a.cfg.CaptureDir, quarantine, frozenFile))
	if err != nil {
		return // nothing frozen
	}
	var frozen []container.Container
	if err := json.Unmarshal(raw, &frozen); err != nil {
		a.cfg.Log.Error("reading what was frozen, to thaw it", "quarantine", quarantine, "err", err)
		return
	}
	for _, c := range frozen {
		if err := container.Thaw(ctx, a.cfg.HostRoot, c); err != nil {
			a.cfg.Log.Error("thawing a container of a pod released while no agent ran", "quarantine", quarantine, "container", c.Name, "err", err)
		}
	}
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
