package tamper

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterRules are what the guard needs in every namespace it guards:
// watch quarantined pods and every NetworkPolicy, write the label and
// kir's policy back, record Events. kir-contain grants all but watch.
func ClusterRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "patch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	}
}

// NamespaceRules are what the guard needs in kir's namespace: its Lease,
// the memory it watches and the release marks (kir serve's Role
// kir-serve-claims grants them).
func NamespaceRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	}
}

// Missing asks the API server which of the guard's rules it may not use,
// as the guard's own identity (SelfSubjectAccessReview), and says so: ""
// when it may use them all. Run logs it on taking the lead.
func Missing(ctx context.Context, o Options) (string, error) {
	o = o.withDefaults()
	var denied []string
	check := func(ns string, rules []rbacv1.PolicyRule) error {
		for _, r := range rules {
			for _, verb := range r.Verbs {
				rev, err := o.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: ns, Verb: verb, Group: r.APIGroups[0], Resource: r.Resources[0],
					}},
				}, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				if !rev.Status.Allowed {
					where := "every namespace"
					if ns != "" {
						where = "namespace " + ns
					}
					denied = append(denied, fmt.Sprintf("%s %s in %s", verb, r.Resources[0], where))
				}
			}
		}
		return nil
	}
	if err := check(o.Watch, ClusterRules()); err != nil {
		return "", fmt.Errorf("checking the tamper guard's permissions: %w", err)
	}
	if err := check(o.Namespace, NamespaceRules()); err != nil {
		return "", fmt.Errorf("checking the tamper guard's permissions: %w", err)
	}
	if len(denied) == 0 {
		return "", nil
	}
	return "the tamper guard may not " + strings.Join(denied, ", ") + ": lifted quarantines may go unnoticed or unrestored", nil
}
