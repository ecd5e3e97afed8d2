package action

import "k8s.io/apimachinery/pkg/types"

// Names scripts and other tools rely on: the labels, annotations, taint and
// field manager kir writes. They are part of kir's interface: do not change
// them. Every package that writes or reads kir's marks uses these.
const (
	// FieldManager is the field manager of kir's writes that have none of
	// their own below.
	FieldManager = "kir"
	// FieldManagerQuarantineLabel applies a contained pod's quarantine
	// label, and nothing else: server-side apply removes what a manager
	// stops applying, so this one must never carry another field.
	FieldManagerQuarantineLabel = "kir-quarantine-label"
	// FieldManagerQuarantinePolicy applies a pod's quarantine
	// NetworkPolicy, its selector and its record (the annotations).
	FieldManagerQuarantinePolicy = "kir-quarantine-policy"

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
	// AnnotationIncident holds the incident id (on a quarantine policy, a
	// cordoned node; on pods contained by kir before label-first).
	AnnotationIncident = "kir.dev/incident"
	// AnnotationContainedAt holds the UTC time of containment (RFC 3339).
	AnnotationContainedAt = "kir.dev/contained-at"
	// AnnotationContainedBy holds the identity kir acted as.
	AnnotationContainedBy = "kir.dev/contained-by"
	// AnnotationPolicy named the quarantine NetworkPolicy on a pod contained
	// by kir before label-first. Release still removes it.
	AnnotationPolicy = "kir.dev/policy"
	// AnnotationPriorLabels held, on a pod contained by kir before
	// label-first, a copy of every label (JSON): a pod with enough labels
	// made that write too long to land. Nothing writes or reads it now;
	// release still removes it.
	AnnotationPriorLabels = "kir.dev/prior-labels"
	// AnnotationFallback is on a quarantine policy that selects its pod's
	// own labels, because the pod's quarantine label could not be written:
	// why it could not.
	AnnotationFallback = "kir.dev/fallback"
	// AnnotationDetachedLabels holds the labels --detach removed (JSON).
	AnnotationDetachedLabels = "kir.dev/detached-labels"
	// AnnotationCordoned is "true" on a node kir cordoned (it was
	// schedulable before); a node cordoned by someone else lacks it and stays
	// cordoned on release.
	AnnotationCordoned = "kir.dev/cordoned"
	// AnnotationPod names the pod (namespace/name) a quarantine policy isolates.
	AnnotationPod = "kir.dev/pod"
	// AnnotationSessions, on a quarantine policy, is SessionsKeep when the
	// responder asked that the pod's open sessions stay open (--no-cut):
	// the node agent confirms the isolation but cuts nothing.
	AnnotationSessions = "kir.dev/sessions"
	// SessionsKeep is AnnotationSessions' one value.
	SessionsKeep = "keep"
	// AnnotationFreeze, on a quarantine policy, is FreezeYes when the
	// responder asked (--freeze) that the node agent freeze the pod's
	// containers once their volatile state is taken; release thaws them.
	AnnotationFreeze = "kir.dev/freeze"
	// FreezeYes is AnnotationFreeze's one value.
	FreezeYes = "true"
	// AnnotationConfirm, on a quarantine policy, is the request of the
	// latest run that waits for the node agent's confirmation: the agent
	// answers that request, so that a run never reads an earlier run's
	// report, and containing again makes the agent confirm and cut again.
	AnnotationConfirm = "kir.dev/confirm"
	// FieldManagerConfirm applies AnnotationConfirm, and nothing else.
	FieldManagerConfirm = "kir-confirm"
	// AnnotationCaptureKey, on a quarantine policy, is the hex SHA-256 of
	// the key with which a run fetches the node agent's capture of the
	// pod (package agent): only who can write kir's policy can set it,
	// and the key itself never leaves the run's memory.
	AnnotationCaptureKey = "kir.dev/capture-key"
	// FieldManagerCapture applies AnnotationCaptureKey, and nothing else.
	FieldManagerCapture = "kir-capture"

	// DefaultKirNamespace is kir's own namespace unless told otherwise
	// (--kir-namespace).
	DefaultKirNamespace = "kir-system"

	// FieldManagerAgent is the field manager of the node agent's writes:
	// its reports and its heartbeat (package agent).
	FieldManagerAgent = "kir-node-agent"
)

// QuarantineValue is the quarantine label value of the pod with this UID:
// unique to that pod, so one pod's policy never selects another.
func QuarantineValue(uid types.UID) string { return string(uid) }

// PolicyName is the name of the quarantine policy for a quarantine value.
func PolicyName(value string) string { return "kir-quarantine-" + value }
