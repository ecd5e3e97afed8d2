package tamper

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

// Kind is what the guard found.
type Kind string

// The kinds of finding.
const (
	// LabelRemoved, LabelChanged: the pod's quarantine label is gone, or
	// has another value. Restored.
	LabelRemoved Kind = "label-removed"
	LabelChanged Kind = "label-changed"
	// PolicyDeleted, PolicyChanged: kir's quarantine policy is gone, or
	// differs from what kir wrote. Restored.
	PolicyDeleted Kind = "policy-deleted"
	PolicyChanged Kind = "policy-changed"
	// PolicyAdmits: another policy selects the quarantined pod and allows
	// it traffic. Reported, never deleted.
	PolicyAdmits Kind = "policy-admits"
	// FenceChanged: kir's admission policies are missing or changed
	// (Options.Fence).
	FenceChanged Kind = "fence-changed"
	// PolicyUnremembered: a policy labelled as kir's quarantine of a pod
	// has stood for Options.Unremembered with no memory in kir's
	// namespace: a forgery (anyone who may create policies there can
	// write one), or a containment that could not write its memory (its
	// kir warned). Reported, not guarded, not changed.
	PolicyUnremembered Kind = "policy-unremembered"
)

// Kinds lists every Kind.
var Kinds = []Kind{LabelRemoved, LabelChanged, PolicyDeleted, PolicyChanged, PolicyAdmits, FenceChanged, PolicyUnremembered}

// Finding is one thing the guard found, and what it did about it.
type Finding struct {
	Kind Kind `json:"kind"`
	// Namespace, Pod and UID are the quarantined pod's.
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	UID       string `json:"uid,omitempty"`
	// Incident is the incident the quarantine belongs to (kir's record).
	Incident string `json:"incident,omitempty"`
	// Object is what changed: "Pod ns/name", "NetworkPolicy ns/name".
	Object string `json:"object"`
	// What says what differs from what kir wrote.
	What string `json:"what"`
	// Manager is who the object's managedFields say last wrote it: what
	// that client said, authenticated by nothing.
	Manager string `json:"manager"`
	// Restored is true once kir's object is written back; Error says why
	// it could not be. A PolicyAdmits finding restores nothing.
	Restored bool      `json:"restored"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// Line is the finding in one sentence.
func (f Finding) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s", f.Kind, f.Object, f.What)
	switch {
	case f.Kind == PolicyUnremembered:
		fmt.Fprintf(&b, " (it names pod %s/%s)", f.Namespace, f.Pod)
	case f.Namespace != "":
		fmt.Fprintf(&b, " (quarantined pod %s/%s, incident %s)", f.Namespace, f.Pod, f.Incident)
	}
	fmt.Fprintf(&b, "; %s", f.Manager)
	switch {
	case f.Error != "":
		fmt.Fprintf(&b, "; NOT restored: %s", f.Error)
	case f.Restored:
		b.WriteString("; kir restored it")
	case f.Kind == PolicyAdmits:
		b.WriteString("; not deleted: it is not kir's; remove it or release the pod")
	case f.Kind == PolicyUnremembered:
		b.WriteString("; not guarded and not changed: if kir contained that pod, contain it again with leave to write in kir's namespace; otherwise find who wrote it")
	}
	return b.String()
}

// noManager is what a finding says of a deleted object's author.
const noManager = "no manager recorded: a DELETE leaves nothing behind"

// kirManagers are the field managers of kir's own writes.
var kirManagers = []string{action.FieldManager, action.FieldManagerQuarantineLabel, action.FieldManagerQuarantinePolicy,
	action.FieldManagerConfirm, action.FieldManagerCapture, action.FieldManagerAgent}

// manager is the latest writer other than kir in managedFields, as the
// client reported itself. A write that only removes fields leaves its
// writer owning nothing, so the remover may not be listed at all.
func manager(mf []metav1.ManagedFieldsEntry) string {
	var last *metav1.ManagedFieldsEntry
	for i := range mf {
		e := &mf[i]
		if slices.Contains(kirManagers, e.Manager) || e.Subresource != "" {
			continue
		}
		if last == nil || (e.Time != nil && (last.Time == nil || !e.Time.Before(last.Time))) {
			last = e
		}
	}
	if last == nil {
		return "client-reported manager (unauthenticated): none but kir's (a removal leaves its writer owning nothing)"
	}
	at := ""
	if last.Time != nil {
		at = " at " + last.Time.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("client-reported manager (unauthenticated) of the latest write: %q (%s%s); a removal leaves its writer owning nothing, so it may be someone else", last.Manager, last.Operation, at)
}

// eventReason is the reason of a finding's Event.
func eventReason(k Kind) string {
	if k == PolicyAdmits {
		return "QuarantineWeakened"
	}
	return "QuarantineTampered"
}

// announce logs f, records it as an Event on the pod, and hands it to
// Options.Report.
func (g *guard) announce(ctx context.Context, f Finding) {
	f.At = g.o.Now().UTC()
	g.o.Log.Warn("tamper guard: "+f.Line(), "kind", f.Kind, "namespace", f.Namespace, "pod", f.Pod, "incident", f.Incident,
		"object", f.Object, "restored", f.Restored, "err", f.Error)
	if f.Pod != "" {
		g.event(ctx, f)
	}
	if g.o.Report != nil {
		g.o.Report(ctx, f)
	}
}

// maxMessage bounds an Event's message (the API server's limit is 1 KiB
// for the note of events.k8s.io; core Events take more, but nobody reads
// more).
const maxMessage = 1024

func (g *guard) event(ctx context.Context, f Finding) {
	msg := "kir tamper guard: " + f.Line()
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	now := metav1.NewTime(g.o.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: f.Pod + ".", Namespace: f.Namespace,
			Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}},
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: f.Namespace, Name: f.Pod, UID: typesUID(f.UID)},
		Reason:         eventReason(f.Kind), Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kir-tamper"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "kir.dev/tamper", ReportingInstance: g.o.Identity,
	}
	if _, err := g.o.Kube.CoreV1().Events(f.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		g.o.Log.Error("tamper guard: recording an Event", "pod", f.Namespace+"/"+f.Pod, "err", err)
	}
}
