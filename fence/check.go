package fence

import (
	"context"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// State is what Check found of one of the fence's objects.
type State string

const (
	// Installed: present, and as generated (server defaults aside).
	Installed State = "installed"
	// Missing: not in the cluster.
	Missing State = "missing"
	// Changed: present, but not as generated (Status.Detail says where),
	// or, for the parameters, unreadable.
	Changed State = "changed"
)

// Status is one object's state.
type Status struct {
	// Kind is ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding
	// or ConfigMap.
	Kind string `json:"kind"`
	// Name is the object's name (the ConfigMap's is namespace/name).
	Name  string `json:"name"`
	State State  `json:"state"`
	// Detail says what changed.
	Detail string `json:"detail,omitempty"`
}

// Report is every object's state, policies first, then bindings, then
// the parameters.
type Report []Status

// Intact tells whether every object is installed.
func (r Report) Intact() bool {
	for _, s := range r {
		if s.State != Installed {
			return false
		}
	}
	return len(r) > 0
}

// Check reads the fence's policies, bindings and parameters (in
// kirNamespace) and compares each with what this kir generates, ignoring
// what the API server defaults. It needs get on each (the RBAC in
// CheckRBAC); an error other than NotFound is returned as such (wrapped:
// apierrors.IsForbidden tells), never as Missing. kir-serve's read access
// ships with the fence's component, so for kir-serve a Forbidden means the
// component is not installed, or its RBAC was removed. The parameters are
// the site's to edit: they are Changed only when unreadable.
func Check(ctx context.Context, c kubernetes.Interface, kirNamespace string) (Report, error) {
	var r Report
	for _, want := range Policies() {
		got, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, want.Name, metav1.GetOptions{})
		st, err := compare(want.Kind, want.Name, err, func() []string { return policyDiff(want.Spec, got.Spec) })
		if err != nil {
			return nil, err
		}
		r = append(r, st)
	}
	for _, want := range Bindings(kirNamespace) {
		got, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, want.Name, metav1.GetOptions{})
		st, err := compare(want.Kind, want.Name, err, func() []string { return bindingDiff(want.Spec, got.Spec) })
		if err != nil {
			return nil, err
		}
		r = append(r, st)
	}
	cm, err := c.CoreV1().ConfigMaps(kirNamespace).Get(ctx, ParamsName, metav1.GetOptions{})
	st, err := compare("ConfigMap", kirNamespace+"/"+ParamsName, err, func() []string {
		if _, err := ParseParams(cm.Data); err != nil {
			return []string{err.Error()}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(r, st), nil
}

func compare(kind, name string, getErr error, diff func() []string) (Status, error) {
	st := Status{Kind: kind, Name: name, State: Installed}
	switch {
	case apierrors.IsNotFound(getErr):
		st.State = Missing
	case getErr != nil:
		return st, fmt.Errorf("checking the fence: getting %s %s: %w", kind, name, getErr)
	default:
		if d := diff(); len(d) > 0 {
			st.State, st.Detail = Changed, strings.Join(d, "; ")
		}
	}
	return st, nil
}

func policyDiff(want, got admissionregistrationv1.ValidatingAdmissionPolicySpec) []string {
	defaultPolicy(&got)
	var d []string
	for _, f := range []struct {
		name      string
		want, got any
	}{
		{"failurePolicy", want.FailurePolicy, got.FailurePolicy},
		{"paramKind", want.ParamKind, got.ParamKind},
		{"matchConstraints", want.MatchConstraints, got.MatchConstraints},
		{"matchConditions", want.MatchConditions, got.MatchConditions},
		{"variables", want.Variables, got.Variables},
		{"validations", want.Validations, got.Validations},
		{"auditAnnotations", want.AuditAnnotations, got.AuditAnnotations},
	} {
		if !equality.Semantic.DeepEqual(f.want, f.got) {
			d = append(d, "spec."+f.name+" differs")
		}
	}
	return d
}

func bindingDiff(want, got admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec) []string {
	if got.MatchResources != nil {
		defaultMatch(got.MatchResources)
	}
	var d []string
	if want.PolicyName != got.PolicyName {
		d = append(d, fmt.Sprintf("spec.policyName is %q", got.PolicyName))
	}
	if !equality.Semantic.DeepEqual(want.ParamRef, got.ParamRef) {
		d = append(d, "spec.paramRef differs")
	}
	if !equality.Semantic.DeepEqual(want.MatchResources, got.MatchResources) {
		d = append(d, "spec.matchResources narrows what the policy sees")
	}
	if !equality.Semantic.DeepEqual(want.ValidationActions, got.ValidationActions) {
		d = append(d, fmt.Sprintf("spec.validationActions is %v", got.ValidationActions))
	}
	return d
}

// defaultPolicy sets what the API server defaults, as the generated
// policies do: a cluster object that lacks a default (another server's
// version) then still compares equal.
func defaultPolicy(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
	if s.FailurePolicy == nil {
		s.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
	}
	if s.MatchConstraints != nil {
		defaultMatch(s.MatchConstraints)
	}
}

func defaultMatch(m *admissionregistrationv1.MatchResources) {
	if m.MatchPolicy == nil {
		m.MatchPolicy = ptr.To(admissionregistrationv1.Equivalent)
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				rules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
			}
		}
	}
}
