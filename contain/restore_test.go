package contain_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
)

// TestReadQuarantineAndDrift: a policy as Isolate writes it reads back to
// the same allow-list and record, with no problem and no drift; each
// hostile change is a problem or a drift, and the quarantine read back
// from it never allows more than kir wrote.
func TestReadQuarantineAndDrift(t *testing.T) {
	t.Parallel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "0b5f8a1e-1111-2222-3333-444455556666"}}
	record := map[string]string{action.AnnotationIncident: "inc-1", action.AnnotationPod: "shop/web-1", action.AnnotationContainedBy: "alice"}
	allow := contain.AllowList{DNS: true, EgressCIDRs: []string{"10.0.0.0/8"}}
	q := contain.Quarantine{Namespace: "shop", Name: "web-1", UID: pod.UID, Allow: allow, Record: record}
	written := q.Policy()
	tests := []struct {
		name     string
		change   func(p *networkingv1.NetworkPolicy)
		problem  string // in ReadQuarantine's problems
		drift    string // in Drift's
		narrower bool   // the read-back narrows q
	}{
		{name: "as written", narrower: true},
		{name: "an ingress rule", change: func(p *networkingv1.NetworkPolicy) { p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}} },
			problem: "ingress rule", drift: "spec changed", narrower: true},
		{name: "an allow-all egress rule", change: func(p *networkingv1.NetworkPolicy) {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
		}, problem: "egress rule 2", drift: "spec changed", narrower: true},
		{name: "a wider CIDR", change: func(p *networkingv1.NetworkPolicy) { p.Spec.Egress[1].To[0].IPBlock.CIDR = "0.0.0.0/0" },
			drift: "spec changed"},
		{name: "a selector matching nothing", change: func(p *networkingv1.NetworkPolicy) {
			p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"nobody": "here"}}
		}, problem: "pod selector", drift: "spec changed", narrower: true},
		{name: "egress only", change: func(p *networkingv1.NetworkPolicy) {
			p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		},
			problem: "policy types", drift: "spec changed", narrower: true},
		{name: "sessions kept, forged", change: func(p *networkingv1.NetworkPolicy) { p.Annotations[action.AnnotationSessions] = action.SessionsKeep },
			drift: "annotation kir.dev/sessions"},
		{name: "frozen", change: func(p *networkingv1.NetworkPolicy) { p.Annotations[action.AnnotationFreeze] = action.FreezeYes },
			drift: "annotation kir.dev/freeze", narrower: true},
		{name: "another incident", change: func(p *networkingv1.NetworkPolicy) { p.Annotations[action.AnnotationIncident] = "inc-2" },
			drift: "annotation kir.dev/incident"},
		{name: "owner reference gone", change: func(p *networkingv1.NetworkPolicy) { p.OwnerReferences = nil }, drift: "owner reference", narrower: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := written.DeepCopy()
			if tc.change != nil {
				tc.change(p)
			}
			got, problems, err := contain.ReadQuarantine(p)
			if err != nil {
				t.Fatal(err)
			}
			if all := strings.Join(problems, "; "); (tc.problem == "") != (all == "") || !strings.Contains(all, tc.problem) {
				t.Errorf("problems %q, want %q", all, tc.problem)
			}
			if all := strings.Join(q.Drift(p), "; "); (tc.drift == "") != (all == "") || !strings.Contains(all, tc.drift) {
				t.Errorf("drift %q, want %q", all, tc.drift)
			}
			if n := q.Narrows(got, map[string]string{action.LabelQuarantine: q.Value()}); n != tc.narrower {
				t.Errorf("Narrows(%+v) = %v, want %v", got.Allow, n, tc.narrower)
			}
			if d := q.Drift(got.Policy()); len(problems) == 0 && tc.drift == "" && len(d) > 0 {
				t.Errorf("the read-back writes a different policy: %v", d)
			}
		})
	}
}

// TestNarrowsNeedsThePodSelected: a policy on the pod's quarantine label
// is tighter than a fallback only while the pod carries that label (an
// attacker may move a fallback's selector to a label the pod cannot have,
// which selects nothing).
func TestNarrowsNeedsThePodSelected(t *testing.T) {
	t.Parallel()
	own := map[string]string{"app": "web"}
	fallback := contain.Quarantine{Namespace: "shop", Name: "web-1", UID: "0b5f8a1e-1111-2222-3333-444455556666", Selector: own}
	labelled := fallback
	labelled.Selector = nil
	if !fallback.Narrows(labelled, map[string]string{"app": "web", action.LabelQuarantine: labelled.Value()}) {
		t.Error("the pod's own label, once it carries it, is not tighter than its fallback")
	}
	if fallback.Narrows(labelled, own) {
		t.Error("a quarantine label the pod does not carry counts as tighter than its fallback")
	}
	if labelled.Narrows(labelled, own) {
		t.Error("a quarantine label the pod does not carry counts as tight")
	}
	other := fallback
	other.Selector = map[string]string{"app": "elsewhere"}
	if fallback.Narrows(other, own) {
		t.Error("another fallback selector counts as tighter")
	}
}

// TestReadQuarantineRefusesOthersPolicies: a policy not labelled kir's,
// or not named for a pod's UID, is no quarantine.
func TestReadQuarantineRefusesOthersPolicies(t *testing.T) {
	t.Parallel()
	for _, p := range []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "kir-quarantine-abc", Namespace: "shop"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Namespace: "shop", Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kir-quarantine-abc", Namespace: "shop", Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}}}, // names no pod
	} {
		if _, _, err := contain.ReadQuarantine(p); err == nil {
			t.Errorf("ReadQuarantine(%s %v) read a quarantine", p.Name, p.Labels)
		}
	}
}
