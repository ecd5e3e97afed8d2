package contain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
)

// What the tamper guard (package tamper) restores, built by the same
// builders Isolate writes with, and the mark by which Release tells the
// guard to stand down.

// Quarantine is kir's isolation of one pod as Isolate wrote it: what the
// guard compares the cluster with, and writes back.
type Quarantine struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	Allow     AllowList `json:"allow"`
	// Record is kir's record on the policy (restoredKeys).
	Record map[string]string `json:"record,omitempty"`
	// Selector is a fallback policy's selector (the pod's own labels when
	// its quarantine label was refused); nil for a labelled quarantine.
	Selector map[string]string `json:"selector,omitempty"`
}

// Labelled reports whether the quarantine rests on the pod's quarantine
// label (not a fallback).
func (q Quarantine) Labelled() bool { return q.Selector == nil }

// Value is the pod's quarantine label value.
func (q Quarantine) Value() string { return action.QuarantineValue(q.UID) }

// PolicyName is the name of the pod's quarantine policy.
func (q Quarantine) PolicyName() string { return action.PolicyName(q.Value()) }

// restoredKeys are the annotations of kir's record on a policy that the
// guard compares and restores (not the node agent's requests).
var restoredKeys = []string{
	action.AnnotationIncident, action.AnnotationContainedAt, action.AnnotationContainedBy, action.AnnotationPod,
	action.AnnotationSessions, action.AnnotationFreeze, action.AnnotationFallback,
}

// ErrNotQuarantinePolicy is returned by ReadQuarantine for a policy that is
// not kir's quarantine policy of a pod.
var ErrNotQuarantinePolicy = errors.New("not kir's quarantine policy")

// ReadQuarantine reads the quarantine a kir quarantine policy holds. The
// problems are where the policy is not what Isolate writes (a rule it
// never writes, a wider selector): the Quarantine returned leaves those
// out, so that restoring it never allows more than Isolate would.
func ReadQuarantine(pol *networkingv1.NetworkPolicy) (Quarantine, []string, error) {
	value, ok := strings.CutPrefix(pol.Name, action.PolicyName(""))
	if !ok || value == "" || pol.Labels[action.LabelManagedBy] != action.ManagedByKir {
		return Quarantine{}, nil, fmt.Errorf("NetworkPolicy %s/%s: %w", pol.Namespace, pol.Name, ErrNotQuarantinePolicy)
	}
	q := Quarantine{Namespace: pol.Namespace, UID: types.UID(value), Record: subset(pol.Annotations, restoredKeys)}
	for _, o := range pol.OwnerReferences {
		if o.Kind == "Pod" && o.UID == q.UID {
			q.Name = o.Name
		}
	}
	if ns, name, ok := strings.Cut(pol.Annotations[action.AnnotationPod], "/"); q.Name == "" && ok && ns == pol.Namespace {
		q.Name = name
	}
	if q.Name == "" {
		return Quarantine{}, nil, fmt.Errorf("NetworkPolicy %s/%s names no pod (owner reference or %s): %w", pol.Namespace, pol.Name, action.AnnotationPod, ErrNotQuarantinePolicy)
	}
	q.Record[action.AnnotationPod] = q.Namespace + "/" + q.Name
	var problems []string
	sel := pol.Spec.PodSelector
	own := map[string]string{action.LabelQuarantine: value}
	switch _, fallback := pol.Annotations[action.AnnotationFallback]; {
	case maps.Equal(sel.MatchLabels, own) && len(sel.MatchExpressions) == 0:
	case fallback && len(sel.MatchLabels) > 0 && len(sel.MatchExpressions) == 0:
		q.Selector = maps.Clone(sel.MatchLabels)
	default:
		delete(q.Record, action.AnnotationFallback)
		problems = append(problems, "its pod selector is not the pod's quarantine label")
	}
	if !slices.Contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		problems = append(problems, fmt.Sprintf("its policy types are %v, not Ingress and Egress", pol.Spec.PolicyTypes))
	}
	if len(pol.Spec.Ingress) > 0 {
		problems = append(problems, fmt.Sprintf("it has %d ingress rule(s): kir writes none", len(pol.Spec.Ingress)))
	}
	q.Allow, problems = readAllow(pol.Spec.Egress, problems)
	return q, problems, nil
}

// readAllow reads back the allow-list of a quarantine policy's egress
// rules; a rule Isolate never writes is a problem, and left out.
func readAllow(rules []networkingv1.NetworkPolicyEgressRule, problems []string) (AllowList, []string) {
	var allow AllowList
	dns := dnsRule()
	for i, r := range rules {
		if apiequality.Semantic.DeepEqual(r, dns) {
			allow.DNS = true
			continue
		}
		var cidrs []string
		for _, p := range r.To {
			if p.IPBlock == nil || len(p.IPBlock.Except) > 0 || p.PodSelector != nil || p.NamespaceSelector != nil {
				cidrs = nil
				break
			}
			if _, _, err := net.ParseCIDR(p.IPBlock.CIDR); err != nil {
				cidrs = nil
				break
			}
			cidrs = append(cidrs, p.IPBlock.CIDR)
		}
		if len(cidrs) == 0 || len(r.Ports) > 0 {
			problems = append(problems, fmt.Sprintf("egress rule %d is not one kir writes", i))
			continue
		}
		allow.EgressCIDRs = append(allow.EgressCIDRs, cidrs...)
	}
	return allow, problems
}

// dnsRule is the egress rule AllowList.DNS writes, as stored.
func dnsRule() networkingv1.NetworkPolicyEgressRule {
	var np networkingv1.NetworkPolicy
	if err := roundTrip(quarantinePolicy(&corev1.Pod{}, AllowList{DNS: true}, nil, nil), &np); err != nil || len(np.Spec.Egress) == 0 {
		panic(fmt.Sprintf("building the DNS rule: %v", err)) // a bug in quarantinePolicy
	}
	return np.Spec.Egress[0]
}

func roundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// pod is the pod the builders take: its name, namespace, UID and, for a
// fallback, the labels its policy selects.
func (q Quarantine) pod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: q.Name, Namespace: q.Namespace, UID: q.UID, Labels: maps.Clone(q.Selector)}}
}

// Policy is the quarantine policy Isolate writes for q, as stored.
func (q Quarantine) Policy() *networkingv1.NetworkPolicy {
	apply := QuarantinePolicy(q.pod(), q.Allow, q.Record)
	if !q.Labelled() {
		apply = FallbackPolicy(q.pod(), q.Allow, q.Record)
	}
	var np networkingv1.NetworkPolicy
	if err := roundTrip(apply, &np); err != nil {
		panic(fmt.Sprintf("converting a quarantine policy: %v", err)) // the builder's own types
	}
	return &np
}

// Drift says how pol differs from the policy Isolate writes for q:
// nothing when it isolates the pod as written (the node agent's
// annotations and anything others add to labels or annotations aside).
func (q Quarantine) Drift(pol *networkingv1.NetworkPolicy) []string {
	want := q.Policy()
	var out []string
	if !apiequality.Semantic.DeepEqual(want.Spec, pol.Spec) {
		got, _ := json.Marshal(pol.Spec)
		out = append(out, "its spec changed: "+truncate(string(got), 512))
	}
	for _, k := range restoredKeys {
		if pol.Annotations[k] != want.Annotations[k] {
			out = append(out, fmt.Sprintf("annotation %s is %q, not %q", k, truncate(pol.Annotations[k], 128), want.Annotations[k]))
		}
	}
	return append(out, q.MetaDrift(pol)...)
}

// MetaDrift says how pol's labels and owner reference differ from those
// Isolate writes for q.
func (q Quarantine) MetaDrift(pol *networkingv1.NetworkPolicy) []string {
	var out []string
	for k, v := range q.Policy().Labels {
		if pol.Labels[k] != v {
			out = append(out, fmt.Sprintf("label %s is %q, not %q", k, pol.Labels[k], v))
		}
	}
	if !slices.ContainsFunc(pol.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == q.UID && o.Kind == "Pod" }) {
		out = append(out, "its owner reference to the pod is gone")
	}
	return out
}

// Narrows reports whether n isolates the same pod, whose labels are
// podLabels, at least as tightly as q: the same selector, or the pod's
// quarantine label where q fell back and the pod carries it; no more
// allowed; and the same record, but that n may cut sessions q keeps and
// freeze what q does not. Containing a pod again may do that (a fallback
// narrowed once its label lands); anything else that changes the policy
// is undone. A quarantine label the pod does not carry selects nothing:
// never tighter.
func (q Quarantine) Narrows(n Quarantine, podLabels map[string]string) bool {
	if n.UID != q.UID || (n.Allow.DNS && !q.Allow.DNS) || !recordNarrows(q, n) {
		return false
	}
	switch {
	case n.Labelled() && podLabels[action.LabelQuarantine] != n.Value():
		return false
	case !n.Labelled() && !maps.Equal(n.Selector, q.Selector):
		return false
	}
	for _, c := range n.Allow.EgressCIDRs {
		if !slices.Contains(q.Allow.EgressCIDRs, c) {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// RestorePolicy writes q's policy back over pol (nil when deleted): the
// spec replaced whole when it differs (rules another manager added are
// not kir's to keep, and an apply would leave them), then kir's apply,
// which puts back its labels, record and owner reference.
func RestorePolicy(ctx context.Context, kube kubernetes.Interface, q Quarantine, pol *networkingv1.NetworkPolicy) error {
	policies := kube.NetworkingV1().NetworkPolicies(q.Namespace)
	if pol != nil {
		if err := RestorePolicySpec(ctx, kube, q, pol); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	apply := QuarantinePolicy(q.pod(), q.Allow, q.Record)
	if !q.Labelled() {
		apply = FallbackPolicy(q.pod(), q.Allow, q.Record)
	}
	if _, err := policies.Apply(ctx, apply, metav1.ApplyOptions{FieldManager: action.FieldManagerQuarantinePolicy, Force: true}); err != nil {
		return fmt.Errorf("applying NetworkPolicy %s/%s: %w", q.Namespace, *apply.Name, err)
	}
	return nil
}

// RestorePolicySpec replaces pol's spec with q's when it differs, and
// sets its record annotations to q's (another manager's value under one
// of kir's keys survives kir's apply), on the object pol only (its UID):
// a policy deleted meanwhile is not created again (a NotFound error),
// which a release under way relies on.
func RestorePolicySpec(ctx context.Context, kube kubernetes.Interface, q Quarantine, pol *networkingv1.NetworkPolicy) error {
	want := q.Policy()
	ops := annotationOps(pol.Annotations, want.Annotations)
	if !apiequality.Semantic.DeepEqual(want.Spec, pol.Spec) {
		ops = append(ops, map[string]any{"op": "replace", "path": "/spec", "value": want.Spec})
	}
	if len(ops) == 0 {
		return nil
	}
	patch, err := json.Marshal(append([]map[string]any{{"op": "test", "path": "/metadata/uid", "value": pol.UID}}, ops...))
	if err != nil {
		return err
	}
	if _, err := kube.NetworkingV1().NetworkPolicies(q.Namespace).Patch(ctx, pol.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: action.FieldManagerQuarantinePolicy}); err != nil {
		return fmt.Errorf("replacing the spec of NetworkPolicy %s/%s: %w", q.Namespace, pol.Name, err)
	}
	return nil
}

// recordNarrows reports whether n's record is q's, but that n may cut the
// sessions q keeps and freeze what q does not (a fallback's reason
// aside).
func recordNarrows(q, n Quarantine) bool {
	a, b := maps.Clone(q.Record), maps.Clone(n.Record)
	for _, m := range []map[string]string{a, b} {
		delete(m, action.AnnotationFallback)
	}
	if a[action.AnnotationSessions] == action.SessionsKeep {
		delete(a, action.AnnotationSessions)
		delete(b, action.AnnotationSessions)
	}
	if b[action.AnnotationFreeze] == action.FreezeYes {
		delete(a, action.AnnotationFreeze)
		delete(b, action.AnnotationFreeze)
	}
	return maps.Equal(a, b)
}

// annotationOps are the JSON patch operations that make stored's
// annotations under kir's record keys (restoredKeys) want's.
func annotationOps(stored, want map[string]string) []map[string]any {
	var ops []map[string]any
	escape := strings.NewReplacer("~", "~0", "/", "~1")
	for _, k := range restoredKeys {
		v, ok := want[k]
		cur, had := stored[k]
		path := "/metadata/annotations/" + escape.Replace(k)
		switch {
		case ok && (!had || cur != v):
			ops = append(ops, map[string]any{"op": "add", "path": path, "value": v})
		case !ok && had:
			ops = append(ops, map[string]any{"op": "remove", "path": path})
		}
	}
	if len(ops) > 0 && stored == nil {
		ops = append([]map[string]any{{"op": "add", "path": "/metadata/annotations", "value": map[string]string{}}}, ops...)
	}
	return ops
}

// RestoreLabel applies the pod's quarantine label again, alone, under
// its own field manager, on the pod with q's UID only.
func RestoreLabel(ctx context.Context, kube kubernetes.Interface, q Quarantine) error {
	apply := corev1ac.Pod(q.Name, q.Namespace).WithUID(q.UID).WithLabels(map[string]string{action.LabelQuarantine: q.Value()})
	if _, err := kube.CoreV1().Pods(q.Namespace).Apply(ctx, apply, metav1.ApplyOptions{FieldManager: action.FieldManagerQuarantineLabel, Force: true}); err != nil {
		return fmt.Errorf("labelling pod %s/%s: %w", q.Namespace, q.Name, err)
	}
	return nil
}

// Admitting returns the policies but own that select a pod with
// podLabels and allow it some traffic: NetworkPolicies are additive, so
// each re-opens what the quarantine closes. Unlike Isolate's warning, a
// policy labelled as kir's counts too: the label is anyone's to write.
func Admitting(policies []networkingv1.NetworkPolicy, podLabels map[string]string, own string) []Weakener {
	var out []Weakener
	set := labels.Set(podLabels)
	for _, p := range policies {
		if p.Name == own {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(set) {
			continue
		}
		var allows []string
		types := p.Spec.PolicyTypes
		if len(types) == 0 { // as the API server defaults them
			types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			if len(p.Spec.Egress) > 0 {
				types = append(types, networkingv1.PolicyTypeEgress)
			}
		}
		if slices.Contains(types, networkingv1.PolicyTypeIngress) && len(p.Spec.Ingress) > 0 {
			allows = append(allows, "Ingress")
		}
		if slices.Contains(types, networkingv1.PolicyTypeEgress) && len(p.Spec.Egress) > 0 {
			allows = append(allows, "Egress")
		}
		if len(allows) > 0 {
			out = append(out, Weakener{Name: p.Name, Allows: allows})
		}
	}
	return out
}

// ReleasingLease is the name of the Lease, in kir's namespace, by which
// Release says it is releasing the pod with this UID: the tamper guard
// reads it before anything else and stands down for that pod. It lives in
// kir's namespace because the pod's namespace is the attacker's: whoever
// may patch the pod, or its policies, cannot write it there.
func ReleasingLease(uid types.UID) string { return "kir-releasing-" + string(uid) }

// ReleasingFor is how long a release mark holds the guard off while the
// quarantine policy is still there: a release that never deleted the
// policy (it failed) is guarded again after that.
const ReleasingFor = 5 * time.Minute

// GuardLease is the Lease in kir's namespace by which one tamper guard
// leads (package tamper, which cannot be imported here).
const GuardLease = "kir-tamper"

// markReleasing writes the release mark of pod before Release removes
// anything, where a tamper guard runs or ran: with no guard's Lease in
// kir's namespace (or no such namespace) there is none to tell, and a
// responder who may not write there still releases.
func markReleasing(ctx context.Context, env action.Env, j *action.WriteLog, pod *corev1.Pod) error {
	name, ns := ReleasingLease(pod.UID), env.KirNamespace
	if _, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx, GuardLease, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	now := metav1.NewMicroTime(env.Now().UTC())
	apply := coordinationv1ac.Lease(name, ns).
		WithLabels(map[string]string{action.LabelManagedBy: action.ManagedByKir}).
		WithAnnotations(map[string]string{action.AnnotationPod: pod.Namespace + "/" + pod.Name}).
		WithSpec(coordinationv1ac.LeaseSpec().WithHolderIdentity(truncate(env.Actor, 128)).
			WithAcquireTime(now).WithRenewTime(now).WithLeaseDurationSeconds(int32(ReleasingFor / time.Second)))
	err := j.Do(action.Write{Verb: "apply", Kind: "Lease", Namespace: ns, Name: name, Body: apply}, func() (any, error) {
		l, err := env.Kube.CoordinationV1().Leases(ns).Apply(ctx, apply, applyOpts(env, action.FieldManager))
		if apierrors.IsNotFound(err) {
			return nil, nil // no kir namespace, no guard
		}
		return l, err
	})
	if err != nil {
		return fmt.Errorf("marking the release in kir's namespace (Lease %s/%s: get, create, patch and delete leases there, as the Role kir-responder grants), without which kir serve's tamper guard would restore the quarantine: %w", ns, name, err)
	}
	return nil
}
