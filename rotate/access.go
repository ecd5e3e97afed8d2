package rotate

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AccessError is a rotation refused before its first write because kir
// lacks permissions in the namespace: nothing was changed.
type AccessError struct {
	// Namespace is where the permissions are missing.
	Namespace string
	// Missing are the missing permissions, as "VERB RESOURCE[.GROUP]".
	Missing []string
}

func (e *AccessError) Error() string {
	return fmt.Sprintf("kir may not %s in namespace %s, so nothing was changed: bind kir-rotate, or kir-rotate-namespaced with a RoleBinding in %s (docs/rbac.md)",
		strings.Join(e.Missing, ", "), e.Namespace, e.Namespace)
}

// Status makes an AccessError a Forbidden API error for
// apierrors.IsForbidden, so that callers treat it as RBAC's refusal (kir's
// exit code 4), which it is, only asked before the first write.
func (e *AccessError) Status() metav1.Status {
	return metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: e.Error()}
}

// clusterScopedRules are resources of rotation's rules that a RoleBinding
// cannot grant; their absence costs a confirmation, not a half-done
// rotation (TokenReview: see saRotation.confirm).
var clusterScopedRules = map[string]bool{"tokenreviews": true}

// checkAccess asks the API server (one SelfSubjectAccessReview per verb
// and resource) whether kir may do everything rules say in namespace ns,
// so that a rotation that would stop half-way for want of a permission
// (say, after deleting the legacy token Secrets but before recreating the
// ServiceAccount) does not start. The check sees RBAC only, not admission;
// when kir may not ask (SelfSubjectAccessReview forbidden), it is skipped
// and each request is authorised on its own.
func checkAccess(ctx context.Context, kube kubernetes.Interface, ns string, rules []rbacv1.PolicyRule) error {
	var missing []string
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				if clusterScopedRules[res] {
					continue
				}
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range rule.Verbs {
					r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
						Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
							Namespace: ns, Verb: verb, Group: g, Resource: resource, Subresource: sub,
						}},
					}, metav1.CreateOptions{})
					switch {
					case apierrors.IsForbidden(err) || apierrors.IsNotFound(err):
						return nil // cannot ask: each request is authorised on its own
					case err != nil:
						return fmt.Errorf("checking whether kir may %s %s in namespace %s: %w", verb, res, ns, err)
					case !r.Status.Allowed:
						missing = append(missing, strings.TrimSuffix(verb+" "+res+"."+g, "."))
					}
				}
			}
		}
	}
	if len(missing) > 0 {
		return &AccessError{Namespace: ns, Missing: missing}
	}
	return nil
}

// serviceAccountRules are the rules rotate.serviceaccount needs, without
// those noRestart makes unused.
func serviceAccountRules(noRestart bool) []rbacv1.PolicyRule {
	rules := ServiceAccountAction().Spec().Rules
	if !noRestart {
		return rules
	}
	out := make([]rbacv1.PolicyRule, 0, len(rules))
	for _, r := range rules {
		if len(r.APIGroups) == 1 && r.APIGroups[0] == "apps" {
			r.Verbs = []string{"list"} // listed all the same, never patched
		}
		out = append(out, r)
	}
	return out
}
