package catalog

import (
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/contain"
	"kir.dev/kir/internal/action"
)

// Registry returns every action kir ships.
func Registry() action.Registry {
	r, err := action.NewRegistry(contain.Actions()...)
	if err != nil {
		panic(fmt.Sprintf("kir's action list is inconsistent: %v", err)) // a programming error, caught by every test
	}
	return r
}

// Capability is a group of actions granted together by one ClusterRole.
type Capability struct {
	// Name is the capability, e.g. "contain"; its role is kir-<name>.
	Name string
	// Prefix selects the actions, e.g. "contain.".
	Prefix string
	// Description goes into the role's annotation.
	Description string
}

// Capabilities lists kir's capabilities. Each later capability adds its own
// role; none widens another.
var Capabilities = []Capability{
	{Name: "contain", Prefix: "contain.", Description: "Isolate, detach, cordon, drain and release. No secrets, no exec, no nodes/proxy."},
}

// baseRules are what every kir command needs: to learn who it acts as, and
// (kir doctor) what it may do.
var baseRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
}

// ClusterRoles derives one least-privilege ClusterRole per capability from
// the rules its actions declare.
func ClusterRoles(r action.Registry) []rbacv1.ClusterRole {
	out := make([]rbacv1.ClusterRole, 0, len(Capabilities))
	for _, c := range Capabilities {
		out = append(out, rbacv1.ClusterRole{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        "kir-" + c.Name,
				Labels:      map[string]string{contain.LabelManagedBy: contain.ManagedByKir},
				Annotations: map[string]string{"kir.dev/description": c.Description},
			},
			Rules: append(append([]rbacv1.PolicyRule{}, baseRules...), r.Rules(c.Prefix)...),
		})
	}
	return out
}
