package action

import "k8s.io/apimachinery/pkg/types"

// Names scripts and other tools rely on: the labels, annotations, taint and
// field manager kir writes. They are part of kir's interface: do not change
// them. Every package that writes or reads kir's marks uses these.
const (
	// FieldManager is the server-side apply field manager of every write.
	FieldManager = "kir"

	// LabelQuarantine marks a contained pod; its value is unique to the pod.
	LabelQuarantine = "kir.dev/quarantine"
	// LabelManagedBy marks objects kir created.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByKir is LabelManagedBy's value.
	ManagedByKir = "kir"

	// TaintKey is the NoSchedule taint kir puts on the node of a contained pod.
	TaintKey = "kir.dev/quarantine"

	// AnnotationPrefix begins every annotation kir writes.
	AnnotationPrefix = "kir.dev/"
	// AnnotationIncident holds the incident id.
	AnnotationIncident = "kir.dev/incident"
	// AnnotationContainedAt holds the UTC time of containment (RFC 3339).
	AnnotationContainedAt = "kir.dev/contained-at"
	// AnnotationContainedBy holds the identity kir acted as.
	AnnotationContainedBy = "kir.dev/contained-by"
	// AnnotationPolicy names the quarantine NetworkPolicy of a pod.
	AnnotationPolicy = "kir.dev/policy"
	// AnnotationPriorLabels holds the pod's labels before containment (JSON).
	AnnotationPriorLabels = "kir.dev/prior-labels"
	// AnnotationDetachedLabels holds the labels --detach removed (JSON).
	AnnotationDetachedLabels = "kir.dev/detached-labels"
	// AnnotationCordoned is "true" on a node kir cordoned (it was
	// schedulable before); a node cordoned by someone else lacks it and stays
	// cordoned on release.
	AnnotationCordoned = "kir.dev/cordoned"
	// AnnotationPod names the pod (namespace/name) a quarantine policy isolates.
	AnnotationPod = "kir.dev/pod"
)

// QuarantineValue is the quarantine label value of the pod with this UID:
// unique to that pod, so one pod's policy never selects another.
func QuarantineValue(uid types.UID) string { return string(uid) }

// PolicyName is the name of the quarantine policy for a quarantine value.
func PolicyName(value string) string { return "kir-quarantine-" + value }
