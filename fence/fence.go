package fence

import (
	"fmt"
	"regexp"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
)

// The fence's objects' names: each policy's binding has the policy's name.
const (
	// PolicyQuarantine keeps the quarantine label on pods (and, with
	// protectDeletion, quarantined pods themselves).
	PolicyQuarantine = "kir-fence-quarantine"
	// PolicyPolicies keeps kir's NetworkPolicies.
	PolicyPolicies = "kir-fence-policies"
	// PolicyKir fences kir's own ServiceAccounts.
	PolicyKir = "kir-fence-kir"
	// PolicyNames reserves the names of kir's quarantine policies.
	PolicyNames = "kir-fence-names"
	// ParamsName is the ConfigMap, in kir's namespace, of the parameters.
	ParamsName = "kir-fence"
	// CheckRole is the ClusterRole (and Role, in kir's namespace) that lets
	// kir serve read the fence, for Check; both are bound to kir-serve.
	CheckRole = "kir-fence-check"
)

// The parameters' keys in ConfigMap ParamsName.
const (
	// KeyServiceAccounts: kir's ServiceAccounts, "namespace:name", comma-separated.
	KeyServiceAccounts = "serviceAccounts"
	// KeyResponderGroups: the responders' groups, comma-separated.
	KeyResponderGroups = "responderGroups"
	// KeyProtectDeletion: "true" lets only the responders delete a
	// quarantined pod; anything else lets whoever RBAC lets.
	KeyProtectDeletion = "protectDeletion"
)

const (
	labelQuarantine    = action.LabelQuarantine
	labelManagedBy     = action.LabelManagedBy
	managedByKir       = action.ManagedByKir
	taintKey           = action.TaintKey
	prefix             = action.AnnotationPrefix
	annotationDetached = action.AnnotationDetachedLabels
)

// Params are the fence's parameters, kept in ConfigMap ParamsName.
type Params struct {
	// ServiceAccounts are kir's identities, "namespace:name".
	ServiceAccounts []string
	// ResponderGroups are the break-glass groups: their members may lift
	// a quarantine and change kir's policies.
	ResponderGroups []string
	// ProtectDeletion lets only the responders delete a quarantined pod.
	ProtectDeletion bool
}

// DefaultParams are kir serve's ServiceAccount and the groups
// kir:responders and system:masters; deletion is not protected. The node
// agent's ServiceAccount is not among kir's: it writes no pod, node or
// NetworkPolicy (its Leases and Events only), and listing it would let
// whoever holds its token, on any node, lift a quarantine. system:masters is the cluster's own break-glass: it bypasses
// RBAC and may delete the fence itself, so leaving it out would protect
// nothing, and would leave a responder holding only the cluster-admin
// kubeconfig unable to release a pod at 3 a.m.
func DefaultParams() Params {
	return Params{
		ServiceAccounts: []string{action.DefaultKirNamespace + ":kir-serve"},
		ResponderGroups: []string{"kir:responders", "system:masters"},
	}
}

var (
	saName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	group  = regexp.MustCompile(`^[^,\s]+$`)
)

// Validate returns every problem at once.
func (p Params) Validate() error {
	var probs []string
	for _, s := range p.ServiceAccounts {
		if !saName.MatchString(s) {
			probs = append(probs, fmt.Sprintf("%s: %q is not namespace:name", KeyServiceAccounts, s))
		}
	}
	for _, g := range p.ResponderGroups {
		if !group.MatchString(g) {
			probs = append(probs, fmt.Sprintf("%s: %q is empty or holds a comma or a space", KeyResponderGroups, g))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("fence parameters: %s", strings.Join(probs, "; "))
	}
	return nil
}

// ConfigMap is p as ConfigMap ParamsName in namespace ns.
func (p Params) ConfigMap(ns string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(ParamsName, ns),
		Data: map[string]string{
			KeyServiceAccounts: strings.Join(p.ServiceAccounts, ","),
			KeyResponderGroups: strings.Join(p.ResponderGroups, ","),
			KeyProtectDeletion: fmt.Sprint(p.ProtectDeletion),
		},
	}
}

// ParseParams reads the parameters from their ConfigMap's data.
func ParseParams(data map[string]string) (Params, error) {
	var p Params
	for _, k := range []string{KeyServiceAccounts, KeyResponderGroups} {
		if _, ok := data[k]; !ok {
			return p, fmt.Errorf("fence parameters: no key %s", k)
		}
	}
	p.ServiceAccounts = splitList(data[KeyServiceAccounts])
	p.ResponderGroups = splitList(data[KeyResponderGroups])
	p.ProtectDeletion = data[KeyProtectDeletion] == "true"
	return p, p.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func meta(name, ns string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
		action.LabelManagedBy: action.ManagedByKir, "app.kubernetes.io/part-of": "kir",
	}}
}

// Policies are the fence's ValidatingAdmissionPolicies, with every field
// the API server would default set, so that a policy read back compares
// equal to its generated one.
func Policies() []admissionregistrationv1.ValidatingAdmissionPolicy {
	return []admissionregistrationv1.ValidatingAdmissionPolicy{quarantinePolicy(), policiesPolicy(), kirPolicy(), namesPolicy()}
}

// Bindings bind each policy, with its parameters from ConfigMap
// ParamsName in kirNamespace.
//
// A missing ConfigMap refuses every write the protective policies match
// (parameterNotFoundAction Deny): they match only kir's objects, so the
// fence fails closed there. PolicyKir matches every pod, node and
// NetworkPolicy write, and the API server resolves parameters before
// matchConditions: Deny would refuse every such write of everyone's
// cluster-wide, so it is Allow, and a missing ConfigMap lifts the limits
// on kir (Check reports it missing). PolicyNames, which matches every
// NetworkPolicy created, is Allow for the same reason.
func Bindings(kirNamespace string) []admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	deny, allow := admissionregistrationv1.DenyAction, admissionregistrationv1.AllowAction
	return []admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		binding(PolicyQuarantine, kirNamespace, deny),
		binding(PolicyPolicies, kirNamespace, deny),
		binding(PolicyKir, kirNamespace, allow),
		binding(PolicyNames, kirNamespace, allow),
	}
}

func binding(name, ns string, notFound admissionregistrationv1.ParameterNotFoundActionType) admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: meta(name, ""),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: name,
			ParamRef: &admissionregistrationv1.ParamRef{
				Name: ParamsName, Namespace: ns, ParameterNotFoundAction: &notFound,
			},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
}

// CheckRBAC lets kir-serve (in kirNamespace) read the fence, for Check:
// a ClusterRole and Role named CheckRole and their bindings.
func CheckRBAC(kirNamespace string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *rbacv1.Role, *rbacv1.RoleBinding) {
	names := []string{PolicyQuarantine, PolicyPolicies, PolicyKir, PolicyNames}
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kir-serve", Namespace: kirNamespace}}
	cr := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: meta(CheckRole, ""),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"admissionregistration.k8s.io"}, Verbs: []string{"get"}, ResourceNames: names,
			Resources: []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings"},
		}},
	}
	crb := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: meta(CheckRole, ""),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: CheckRole},
		Subjects:   subjects,
	}
	r := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(CheckRole, kirNamespace),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{ParamsName},
		}},
	}
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(CheckRole, kirNamespace),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: CheckRole},
		Subjects:   subjects,
	}
	return cr, crb, r, rb
}

func policy(name string, rules []admissionregistrationv1.NamedRuleWithOperations, objects *metav1.LabelSelector) admissionregistrationv1.ValidatingAdmissionPolicy {
	if objects == nil {
		objects = &metav1.LabelSelector{}
	}
	for i := range rules {
		rules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
	}
	return admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: meta(name, ""),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			ParamKind:     &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
				NamespaceSelector: &metav1.LabelSelector{},
				ObjectSelector:    objects,
				ResourceRules:     rules,
			},
		},
	}
}

func rule(group, version string, resources []string, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.NamedRuleWithOperations {
	return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources},
	}}
}

var (
	update = admissionregistrationv1.Update
	create = admissionregistrationv1.Create
	del    = admissionregistrationv1.Delete
)

func identities() []admissionregistrationv1.Variable {
	return []admissionregistrationv1.Variable{
		{Name: "kir", Expression: celKir},
		{Name: "responder", Expression: celResponder},
	}
}

func quarantinePolicy() admissionregistrationv1.ValidatingAdmissionPolicy {
	p := policy(PolicyQuarantine,
		[]admissionregistrationv1.NamedRuleWithOperations{rule("", "v1", []string{"pods", "pods/*"}, update, del)},
		&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: labelQuarantine, Operator: metav1.LabelSelectorOpExists}}})
	p.Spec.Variables = identities()
	p.Spec.Validations = []admissionregistrationv1.Validation{
		{Expression: celQuarantineKept, MessageExpression: celQuarantineMessage, Reason: ptr.To(metav1.StatusReasonForbidden)},
		{Expression: celDeletionAllowed, MessageExpression: celDeletionMessage, Reason: ptr.To(metav1.StatusReasonForbidden)},
	}
	return p
}

func policiesPolicy() admissionregistrationv1.ValidatingAdmissionPolicy {
	p := policy(PolicyPolicies,
		[]admissionregistrationv1.NamedRuleWithOperations{rule("networking.k8s.io", "v1", []string{"networkpolicies"}, create, update, del)},
		&metav1.LabelSelector{MatchLabels: map[string]string{labelManagedBy: managedByKir}})
	p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "quarantine-name", Expression: celKirPolicyName}}
	p.Spec.Variables = append(identities(), admissionregistrationv1.Variable{Name: "system", Expression: celSystem})
	p.Spec.Validations = []admissionregistrationv1.Validation{
		{Expression: celPolicyKept, MessageExpression: celPolicyMessage, Reason: ptr.To(metav1.StatusReasonForbidden)},
	}
	return p
}

func kirPolicy() admissionregistrationv1.ValidatingAdmissionPolicy {
	p := policy(PolicyKir, []admissionregistrationv1.NamedRuleWithOperations{
		rule("", "v1", []string{"pods", "pods/*"}, update),
		rule("", "v1", []string{"nodes", "nodes/*"}, update, del),
		rule("networking.k8s.io", "v1", []string{"networkpolicies"}, create, update, del),
	}, nil)
	p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "kir", Expression: celKir}}
	p.Spec.Variables = []admissionregistrationv1.Variable{
		{Name: "oldLabels", Expression: celOldLabels},
		{Name: "newLabels", Expression: celNewLabels},
		{Name: "oldAnnotations", Expression: celOldAnnos},
		{Name: "newAnnotations", Expression: celNewAnnos},
		{Name: "detachedNow", Expression: celDetachedNow},
		{Name: "detachedBefore", Expression: celDetachedBefore},
		{Name: "kirAnnotationsOnly", Expression: celKirAnnotationsOnly},
	}
	forbid := func(expr, msg string) admissionregistrationv1.Validation {
		return admissionregistrationv1.Validation{Expression: expr, Message: msg, Reason: ptr.To(metav1.StatusReasonForbidden)}
	}
	p.Spec.Validations = []admissionregistrationv1.Validation{
		forbid(celPodNoSubresource, "kir's ServiceAccounts may not write a pod's subresources"),
		forbid(celPodSpecKept, "kir's ServiceAccounts may not change a pod's spec, owners or finalizers"),
		forbid(celPodLabels, "kir's ServiceAccounts may change only kir.dev/ labels on a pod, and remove or restore the labels --detach records in "+annotationDetached),
		forbid(celPodAnnotations, "kir's ServiceAccounts may change only kir.dev/ annotations on a pod"),
		forbid(celNodeUpdateOnly, "kir's ServiceAccounts may not delete a node or write its subresources"),
		forbid(celNodeMeta, "kir's ServiceAccounts may change only kir.dev/ annotations in a node's metadata"),
		forbid(celNodeTaints, "kir's ServiceAccounts may change only kir's NoSchedule taint "+taintKey+" among a node's taints"),
		forbid(celNodeSpec, "kir's ServiceAccounts may change only spec.unschedulable and kir's taint in a node's spec"),
		forbid(celPolicyOwned, "kir's ServiceAccounts may write only NetworkPolicies labelled "+labelManagedBy+"="+managedByKir),
		forbid(celPolicyShape, "kir's ServiceAccounts may write only quarantine policies: named kir-quarantine-*, declaring Ingress, with no ingress rule"),
	}
	return p
}

// namesPolicy reserves the names of kir's quarantine policies
// (kir-quarantine-<pod UID>) to kir and the responders, labelled as kir's
// or not. A workload knows its own UID (the downward API, a GET of its
// pod): a policy of that name created before kir contains it, not
// labelled as kir's, would make kir's apply an update of a policy that is
// not kir's, which PolicyKir refuses (kir serve could never isolate the
// pod), and, applied by a responder, would keep the squatter's ingress
// rules in kir's policy (server-side apply leaves fields it does not
// name to their owner).
func namesPolicy() admissionregistrationv1.ValidatingAdmissionPolicy {
	p := policy(PolicyNames,
		[]admissionregistrationv1.NamedRuleWithOperations{rule("networking.k8s.io", "v1", []string{"networkpolicies"}, create)}, nil)
	p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "quarantine-name", Expression: celQuarantineName}}
	p.Spec.Variables = identities()
	p.Spec.Validations = []admissionregistrationv1.Validation{
		{Expression: celNameReserved, MessageExpression: celNameMessage, Reason: ptr.To(metav1.StatusReasonForbidden)},
	}
	return p
}
