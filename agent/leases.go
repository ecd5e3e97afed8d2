package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"

	"kir.dev/kir/action"
)

// The agent writes only its own Leases and Events, each under its own
// field manager: what kir reads, never a decision.

// publish applies the pod's report Lease. A failed write is logged, and
// the next one carries the report whole.
func (a *Agent) publish(ctx context.Context, pod *corev1.Pod, r *Report) {
	r.Request = a.requestOf(pod.UID)
	raw, err := json.Marshal(r)
	if err != nil {
		a.cfg.Log.Error("encoding a report", "err", err)
		return
	}
	now := metav1.NewMicroTime(a.cfg.Now())
	name := ReportName(action.QuarantineValue(pod.UID))
	lease := coordinationv1ac.Lease(name, a.cfg.Namespace).
		WithLabels(managed(RoleReport, a.cfg.Node)).
		WithAnnotations(map[string]string{AnnotationReport: string(raw), action.AnnotationPod: pod.Namespace + "/" + pod.Name}).
		WithSpec(coordinationv1ac.LeaseSpec().WithHolderIdentity(holder(a.cfg.Node)).WithRenewTime(now))
	if _, err := a.cfg.Kube.CoordinationV1().Leases(a.cfg.Namespace).Apply(ctx, lease, metav1.ApplyOptions{FieldManager: action.FieldManagerAgent, Force: true}); err != nil {
		a.cfg.Log.Error("writing the report", "lease", name, "err", err)
	}
}

// drop deletes the pod's report once the pod is released or gone: kir
// matched it to its policy and recorded it in the run's journal already.
func (a *Agent) drop(ctx context.Context, pod *corev1.Pod) {
	name := ReportName(action.QuarantineValue(pod.UID))
	err := a.cfg.Kube.CoordinationV1().Leases(a.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		a.cfg.Log.Warn("deleting the report of a released pod", "lease", name, "err", err)
	}
	if a.cfg.CaptureDir != "" {
		if err := removeCaptures(a.cfg.CaptureDir, action.QuarantineValue(pod.UID)); err != nil {
			a.cfg.Log.Warn("deleting the captures of a released pod", "err", err)
		}
	}
}

// oldReport is the report an earlier agent left for the pod, if any.
func (a *Agent) oldReport(ctx context.Context, pod *corev1.Pod) *Report {
	l, err := a.cfg.Kube.CoordinationV1().Leases(a.cfg.Namespace).Get(ctx, ReportName(action.QuarantineValue(pod.UID)), metav1.GetOptions{})
	if err != nil {
		return nil
	}
	r, err := ReportOf(l)
	if err != nil {
		return nil
	}
	return r
}

func holder(node string) string { return "kir-node-agent/" + node }

// heartbeat renews the node's heartbeat Lease until ctx ends: kir tells
// "no agent on this node" from "the agent has not answered yet" by it.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	for {
		a.beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) beat(ctx context.Context) {
	now := metav1.NewMicroTime(a.cfg.Now())
	secs := int32(HeartbeatStale / time.Second)
	lease := coordinationv1ac.Lease(HeartbeatName(a.cfg.Node), a.cfg.Namespace).
		WithLabels(managed(RoleHeartbeat, a.cfg.Node)).
		WithSpec(coordinationv1ac.LeaseSpec().WithHolderIdentity(holder(a.cfg.Node)).WithRenewTime(now).WithLeaseDurationSeconds(secs))
	if e, ok := a.endpoint(); ok {
		raw, _ := json.Marshal(e)
		lease.WithAnnotations(map[string]string{AnnotationEndpoint: string(raw)})
	}
	if _, err := a.cfg.Kube.CoordinationV1().Leases(a.cfg.Namespace).Apply(ctx, lease, metav1.ApplyOptions{FieldManager: action.FieldManagerAgent, Force: true}); err != nil && ctx.Err() == nil {
		a.cfg.Log.Error("renewing the heartbeat", "err", err)
	}
}

// event records what the agent found on the pod, for people reading the
// cluster.
func (a *Agent) event(ctx context.Context, pod *corev1.Pod, state, msg string) {
	now := metav1.NewTime(a.cfg.Now().UTC())
	typ := corev1.EventTypeNormal
	if state != StateEnforced {
		typ = corev1.EventTypeWarning
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()),
			Namespace: pod.Namespace,
			Labels:    map[string]string{action.LabelManagedBy: action.ManagedByKir},
		},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         "KirIsolation" + reason(state),
		Message:        msg,
		Type:           typ,
		Source:         corev1.EventSource{Component: "kir-node-agent", Host: a.cfg.Node},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	if _, err := a.cfg.Kube.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{FieldManager: action.FieldManagerAgent}); err != nil {
		a.cfg.Log.Warn("recording an event", "err", err)
	}
}

func reason(state string) string {
	switch state {
	case StateEnforced:
		return "Enforced"
	case StateNotEnforced:
		return "NotEnforced"
	}
	return "Unconfirmed"
}
