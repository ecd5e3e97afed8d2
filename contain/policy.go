package contain

import (
	"fmt"
	"maps"
	"net"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"kir.dev/kir/action"
)

// AllowList is what a quarantine policy lets through. The zero value lets
// nothing in and nothing out.
type AllowList struct {
	// DNS allows egress to the cluster DNS pods (kube-system, labelled
	// k8s-app=kube-dns) on port 53, UDP and TCP.
	DNS bool
	// EgressCIDRs allows egress to these networks.
	EgressCIDRs []string
}

// Validate checks the CIDRs.
func (a AllowList) Validate() error {
	for _, c := range a.EgressCIDRs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("invalid egress CIDR %q: %w", c, err)
		}
	}
	return nil
}

// QuarantinePolicy is the policy isolating the pod: it selects exactly the
// pod's quarantine label and value, declares Ingress and Egress, and has no
// ingress rule at all, and no egress rule unless the allow-list asks.
func QuarantinePolicy(pod *corev1.Pod, allow AllowList, annotations map[string]string) *networkingv1ac.NetworkPolicyApplyConfiguration {
	return quarantinePolicy(pod, allow, map[string]string{action.LabelQuarantine: action.QuarantineValue(pod.UID)}, annotations)
}

// FallbackPolicy is the quarantine policy of a pod whose quarantine label
// could not be written: the same policy, under the same name, selecting
// the pod's own labels, and so every other pod that has them too. The
// annotations say why (action.AnnotationFallback). Applying QuarantinePolicy
// over it, once the label lands, narrows it back to the pod in one write.
func FallbackPolicy(pod *corev1.Pod, allow AllowList, annotations map[string]string) *networkingv1ac.NetworkPolicyApplyConfiguration {
	return quarantinePolicy(pod, allow, fallbackSelector(pod), annotations)
}

// fallbackSelector is the pod's labels but kir's own (which it lacks).
func fallbackSelector(pod *corev1.Pod) map[string]string {
	sel := maps.Clone(pod.Labels)
	delete(sel, action.LabelQuarantine)
	return sel
}

func quarantinePolicy(pod *corev1.Pod, allow AllowList, selector, annotations map[string]string) *networkingv1ac.NetworkPolicyApplyConfiguration {
	value := action.QuarantineValue(pod.UID)
	spec := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
		WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
	if allow.DNS {
		udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
		port := intstr.FromInt32(53)
		spec.WithEgress(networkingv1ac.NetworkPolicyEgressRule().
			WithTo(networkingv1ac.NetworkPolicyPeer().
				WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": "kube-system"})).
				WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"k8s-app": "kube-dns"}))).
			WithPorts(
				networkingv1ac.NetworkPolicyPort().WithProtocol(udp).WithPort(port),
				networkingv1ac.NetworkPolicyPort().WithProtocol(tcp).WithPort(port)))
	}
	if len(allow.EgressCIDRs) > 0 {
		rule := networkingv1ac.NetworkPolicyEgressRule()
		for _, c := range allow.EgressCIDRs {
			rule.WithTo(networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(c)))
		}
		spec.WithEgress(rule)
	}
	return networkingv1ac.NetworkPolicy(action.PolicyName(value), pod.Namespace).
		WithLabels(map[string]string{action.LabelManagedBy: action.ManagedByKir, action.LabelQuarantine: value}).
		WithAnnotations(annotations).
		// Owned by the pod, so deleting the pod (release --delete, or anyone)
		// leaves no stray policy behind. Not a controller reference.
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion("v1").WithKind("Pod").WithName(pod.Name).WithUID(pod.UID)).
		WithSpec(spec)
}

// Weakener is another NetworkPolicy that selects a pod and allows traffic.
// NetworkPolicies are additive: its rules still apply to the quarantined pod.
type Weakener struct {
	// Name of the policy.
	Name string `json:"name"`
	// Allows lists the directions it allows: Ingress, Egress.
	Allows []string `json:"allows"`
}

// weakeners returns the policies other than kir's that select a pod with
// podLabels and allow some traffic to or from it.
func weakeners(policies []networkingv1.NetworkPolicy, podLabels map[string]string) []Weakener {
	var out []Weakener
	set := labels.Set(podLabels)
	for _, p := range policies {
		if p.Labels[action.LabelManagedBy] == action.ManagedByKir {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(set) {
			continue
		}
		var allows []string
		types := p.Spec.PolicyTypes
		if len(types) == 0 { // not yet defaulted: Ingress always, Egress if it has rules
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
