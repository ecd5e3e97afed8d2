package contain

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

// emitEvent records a Kubernetes Event on obj. An Event is a note for
// people reading the cluster; failing to write one never fails the
// containment, so the error comes back as a warning instead.
func emitEvent(ctx context.Context, env action.Env, j *action.WriteLog, obj corev1.ObjectReference, reason, message string) (warning string) {
	now := metav1.NewTime(env.Now().UTC())
	ns := obj.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault // events about cluster-scoped objects live here, as kubectl's do
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", obj.Name, now.UnixNano()),
			Namespace: ns,
			Labels:    map[string]string{action.LabelManagedBy: action.ManagedByKir},
			Annotations: map[string]string{
				action.AnnotationIncident: env.Incident,
			},
		},
		InvolvedObject: obj,
		Reason:         reason,
		Message:        message,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kir"},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	err := j.Do(action.Write{Verb: "create", Kind: "Event", Namespace: ns, Name: ev.Name, Body: ev}, func() (any, error) {
		return env.Kube.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()})
	})
	if err != nil {
		return fmt.Sprintf("%s %s: event %s not recorded: %v", obj.Kind, obj.Name, reason, err)
	}
	return ""
}

func podRef(p *corev1.Pod) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
}

func nodeRef(n *corev1.Node) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID}
}
