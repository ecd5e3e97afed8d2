package contain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"kir.dev/kir/action"
)

// ErrFallback marks a pod isolated by a fallback policy: its quarantine
// label could not be written, so the policy selects the pod's own labels,
// and with them any other pod that has them. The isolation step fails
// with it, so the run is partial and says so.
var ErrFallback = errors.New("isolated by a fallback policy instead")

// Fallback is how a pod whose quarantine label was refused is isolated.
type Fallback struct {
	// Reason is why the label could not be written.
	Reason string `json:"reason"`
	// Selects are the other pods (names, in the pod's namespace) the
	// fallback policy selects too: they are cut off as well.
	Selects []string `json:"selects"`
	// SelectsUnknown says why Selects could not be listed, if it could not.
	SelectsUnknown string `json:"selectsUnknown,omitempty"`
}

// recordKeys are the annotations of kir's record on a quarantine policy
// that a later containment keeps as they were.
var recordKeys = []string{action.AnnotationIncident, action.AnnotationContainedAt, action.AnnotationContainedBy}

// podAnnotations are every annotation kir ever wrote on a pod: today only
// --detach's record; before label-first, the whole record. Release
// removes these and no other, so a pod's own kir.dev/ annotations stay.
var podAnnotations = []string{
	action.AnnotationIncident, action.AnnotationContainedAt, action.AnnotationContainedBy,
	action.AnnotationPolicy, action.AnnotationPriorLabels, action.AnnotationDetachedLabels,
}

// maxReason bounds the reason a fallback policy records: an admission
// webhook's message is the cluster's, but not bounded.
const maxReason = 1024

// record is the record a new containment of pod puts on its policy.
func (iso *isolator) record(pod *corev1.Pod) map[string]string {
	r := map[string]string{
		action.AnnotationIncident:    iso.env.Incident,
		action.AnnotationContainedAt: iso.now.Format(time.RFC3339),
		action.AnnotationContainedBy: iso.env.Actor,
		action.AnnotationPod:         pod.Namespace + "/" + pod.Name,
	}
	if iso.p.KeepSessions {
		r[action.AnnotationSessions] = action.SessionsKeep
	}
	if iso.p.Freeze {
		r[action.AnnotationFreeze] = action.FreezeYes
	}
	return r
}

// keepRecord reads pod's quarantine policy, if it exists, and copies into
// record what an earlier containment recorded there. same is true when the
// policy exists and isolates the pod the way asked (fallback or not), so
// that applying it again changes nothing; pol is the policy, if kir's.
func (iso *isolator) keepRecord(ctx context.Context, pod *corev1.Pod, record map[string]string, fallback bool) (pol *networkingv1.NetworkPolicy, same bool, err error) {
	name := action.PolicyName(action.QuarantineValue(pod.UID))
	pol, err = iso.env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("reading NetworkPolicy %s: %w", name, err)
	case pol.Labels[action.LabelManagedBy] != action.ManagedByKir:
		return nil, false, nil // not kir's: its annotations are no record
	}
	for _, k := range recordKeys {
		if v := pol.Annotations[k]; v != "" {
			record[k] = v
		}
	}
	_, isFallback := pol.Annotations[action.AnnotationFallback]
	return pol, isFallback == fallback, nil
}

// label applies pod's quarantine label, alone, under a field manager of its
// own, on the pod with that UID only. It returns the pod as stored, when
// the write persists.
func (iso *isolator) label(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	env := iso.env
	apply := corev1ac.Pod(pod.Name, pod.Namespace).
		WithUID(pod.UID). // never label a new pod that reused the name
		WithLabels(map[string]string{action.LabelQuarantine: action.QuarantineValue(pod.UID)})
	var stored *corev1.Pod
	err := iso.j.Do(action.Write{Verb: "apply", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, Body: apply}, func() (any, error) {
		got, err := env.Kube.CoreV1().Pods(pod.Namespace).Apply(ctx, apply, applyOpts(env, action.FieldManagerQuarantineLabel))
		if err == nil && env.DryRun.Persists() {
			stored = got
		}
		return got, err
	})
	return stored, err
}

// applyPolicy applies pod's quarantine policy (or its fallback). A policy
// of that name someone else created first (the workload knows its own
// UID, and so the name) keeps, through the apply, what kir's apply does
// not set: its ingress rules, and its own values under kir's record keys
// (kir.dev/sessions: keep would have the node agent keep the attacker's
// sessions open). Such a policy's spec is then replaced whole, and those
// annotations set or removed, on that object only, so that what kir
// stored is what kir says.
func (iso *isolator) applyPolicy(ctx context.Context, pod *corev1.Pod, policy *networkingv1ac.NetworkPolicyApplyConfiguration) error {
	defer iso.policySent()
	var stored *networkingv1.NetworkPolicy
	err := iso.j.Do(action.Write{Verb: "apply", Kind: "NetworkPolicy", Namespace: pod.Namespace, Name: *policy.Name, Body: policy}, func() (any, error) {
		var err error
		stored, err = iso.env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Apply(ctx, policy, applyOpts(iso.env, action.FieldManagerQuarantinePolicy))
		return stored, err
	})
	if err != nil || stored == nil {
		return err
	}
	ops := annotationOps(stored.Annotations, policy.Annotations)
	if squatted(stored.Spec, policy.Spec) {
		ops = append(ops, map[string]any{"op": "replace", "path": "/spec", "value": policy.Spec})
	}
	if len(ops) == 0 {
		return nil
	}
	patch, err := json.Marshal(append([]map[string]any{{"op": "test", "path": "/metadata/uid", "value": stored.UID}}, ops...))
	if err != nil {
		return err
	}
	return iso.j.Do(action.Write{Verb: "patch", Kind: "NetworkPolicy", Namespace: pod.Namespace, Name: *policy.Name, Body: json.RawMessage(patch)}, func() (any, error) {
		opts := metav1.PatchOptions{FieldManager: action.FieldManagerQuarantinePolicy, DryRun: iso.env.DryRun.Opts()}
		return iso.env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Patch(ctx, *policy.Name, types.JSONPatchType, patch, opts)
	})
}

// squatted reports whether a stored quarantine policy admits more than
// kir applied: ingress rules (kir's have none), more egress rules, or
// another selector.
func squatted(stored networkingv1.NetworkPolicySpec, applied *networkingv1ac.NetworkPolicySpecApplyConfiguration) bool {
	if applied == nil {
		return false
	}
	sel := applied.PodSelector
	return len(stored.Ingress) > len(applied.Ingress) || len(stored.Egress) > len(applied.Egress) ||
		sel == nil || !maps.Equal(stored.PodSelector.MatchLabels, sel.MatchLabels) || len(stored.PodSelector.MatchExpressions) > 0
}

// refused tells a label write the cluster will not take (denied by
// admission or by RBAC, or invalid) from one a retry may land, or one on a
// pod that is gone or was replaced: only the first calls for the fallback.
func refused(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsRequestEntityTooLargeError(err)
}

// fallback isolates a pod whose quarantine label was refused with a policy
// on its own labels, and says loudly which other pods that cuts off too.
// It never detaches the pod: its isolation now rests on those labels.
func (iso *isolator) fallback(ctx context.Context, pod *corev1.Pod, out PodOutcome, record map[string]string, labelErr error) (PodOutcome, map[string]string, bool, []string, error) {
	id := pod.Namespace + "/" + pod.Name
	reason := labelErr.Error()
	if len(reason) > maxReason {
		reason = reason[:maxReason] + "…"
	}
	sel := fallbackSelector(pod)
	if len(sel) == 0 {
		return out, nil, false, nil, fmt.Errorf("isolating pod %s: its quarantine label was refused (%s), and it has no label of its own: a policy on its labels would cut off every pod of namespace %s, so none was applied", id, reason, pod.Namespace)
	}
	_, same, err := iso.keepRecord(ctx, pod, record, true)
	if err != nil {
		return out, nil, false, nil, fmt.Errorf("isolating pod %s: its quarantine label was refused (%s); %w", id, reason, err)
	}
	record[action.AnnotationFallback] = reason
	if err := iso.applyPolicy(ctx, pod, FallbackPolicy(pod, iso.p.allow(), record)); err != nil {
		return out, nil, false, nil, fmt.Errorf("isolating pod %s: its quarantine label was refused (%s); applying the fallback NetworkPolicy %s: %w", id, reason, out.Policy, err)
	}
	fb := &Fallback{Reason: reason, Selects: []string{}}
	others, err := iso.env.Kube.CoreV1().Pods(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		fb.SelectsUnknown = fmt.Sprintf("listing the pods of %s: %v", pod.Namespace, err)
	} else {
		fb.Selects = selectedOthers(others.Items, pod, sel)
	}
	out.Fallback = fb
	var warnings []string
	if w := remember(ctx, iso.env, iso.j, iso.quarantine(pod, record, sel)); w != "" {
		warnings = append(warnings, w)
	}
	if iso.detacher != nil {
		warnings = append(warnings, fmt.Sprintf("pod %s was not detached: its fallback isolation rests on the labels detaching removes", id))
	}
	if !same {
		msg := fmt.Sprintf("kir could not label this pod (%s): NetworkPolicy %s isolates it by its own labels, with %d other pod(s) (incident %s, by %s)", reason, out.Policy, len(fb.Selects), record[action.AnnotationIncident], iso.env.Actor)
		if w := emitEvent(ctx, iso.env, iso.j, podRef(pod), "QuarantineFallback", msg); w != "" {
			warnings = append(warnings, w)
		}
	}
	return out, pod.Labels, !same, warnings, fmt.Errorf("isolating pod %s: its quarantine label was refused (%s); %w: %s", id, reason, ErrFallback, fb.line(out.Policy))
}

// selectedOthers are the names of the pods but pod that sel selects, sorted.
func selectedOthers(pods []corev1.Pod, pod *corev1.Pod, sel map[string]string) []string {
	s := labels.SelectorFromSet(sel)
	out := []string{}
	for _, p := range pods {
		if p.UID != pod.UID && s.Matches(labels.Set(p.Labels)) {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// maxNamed is how many of the other pods a line names; the output lists
// them all.
const maxNamed = 20

// line says how the pod is isolated, and which other pods with it.
func (f *Fallback) line(policy string) string {
	return fmt.Sprintf("NetworkPolicy %s selects the pod's own labels, and %s", policy, f.selects())
}

// selects says which other pods the fallback policy selects.
func (f *Fallback) selects() string {
	switch {
	case f.SelectsUnknown != "":
		return "the other pods it selects are unknown: " + f.SelectsUnknown
	case len(f.Selects) == 0:
		return "no other pod"
	}
	names := f.Selects
	more := ""
	if len(names) > maxNamed {
		names, more = names[:maxNamed], fmt.Sprintf(" and %d more", len(f.Selects)-maxNamed)
	}
	return fmt.Sprintf("%d other pod(s) it cuts off too: %s%s", len(f.Selects), strings.Join(names, ", "), more)
}
