package collect

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"kir.dev/kir/internal/kube"
)

// events writes events/pod.json and events/node.json: the Events whose
// involvedObject is the pod (this instance of it: by UID too) or its node,
// as EventLists.
func (r *run) events(ctx context.Context) {
	pod := fields.Set{
		"involvedObject.kind": "Pod",
		"involvedObject.name": r.name,
		"involvedObject.uid":  string(r.pod.UID),
	}
	r.eventList(ctx, "events/pod.json", r.namespace, pod, "Pod/"+r.namespace+"/"+r.name)
	node := r.pod.Spec.NodeName
	if node == "" {
		r.note("events", "the pod is not scheduled: no node events")
		return
	}
	// Node events live in whichever namespace their reporter chose
	// ("default" for the kubelet's and kir's), and a kubelet sets the
	// node's name as its UID: by kind and name, in every namespace.
	r.eventList(ctx, "events/node.json", metav1.NamespaceAll, fields.Set{
		"involvedObject.kind": "Node",
		"involvedObject.name": node,
	}, "Node/"+node)
}

func (r *run) eventList(ctx context.Context, file, namespace string, sel fields.Set, object string) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	src := r.source("events")
	src.Object = object
	ctx, auditID := kube.CaptureAuditID(ctx)
	list, err := r.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	if err != nil {
		r.fail("events", fmt.Errorf("listing the events of %s: %w", object, err))
		return
	}
	src.AuditID = auditID()
	out := &corev1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"}, ListMeta: list.ListMeta}
	for _, e := range list.Items {
		e.ManagedFields = nil
		e.APIVersion, e.Kind = "v1", "Event"
		out.Items = append(out.Items, e)
	}
	if _, err := r.putJSON(file, out, src); err != nil {
		r.fail("events", err)
	}
}
