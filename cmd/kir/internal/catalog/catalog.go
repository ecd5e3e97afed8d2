package catalog

import (
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/contain"
	"kir.dev/kir/guard"
	"kir.dev/kir/rotate"
)

// Registry returns every action kir ships, its rotations reaching the
// secret stores as stores says. Listing, documenting and validating
// actions need no stores: rotate.Stores{} does.
func Registry(stores rotate.Stores) action.Registry {
	r, err := action.NewRegistry(slices.Concat(contain.Actions(), collect.Actions(), rotate.Actions(stores))...)
	if err != nil {
		panic(fmt.Sprintf("kir's action list is inconsistent: %v", err)) // a programming error, caught by every test
	}
	return r
}

// Capability is a group of actions granted together by one ClusterRole.
type Capability struct {
	// Name is the capability, e.g. "contain"; its role is kir-<name>.
	Name string
	// Prefix selects the actions, e.g. "contain.", whose rules the role
	// grants; empty selects none.
	Prefix string
	// Rules are granted besides the actions': an opt-in role's, which no
	// action asks for unless a parameter says so.
	Rules []rbacv1.PolicyRule
	// Description goes into the role's annotation.
	Description string
}

// Capabilities lists kir's capabilities. Each later capability adds its own
// role; none widens another.
var Capabilities = []Capability{
	{Name: "contain", Prefix: "contain.", Description: "Isolate, detach, cordon, drain and release. No secrets, no exec, no nodes/proxy."},
	{Name: "collect", Prefix: "collect.", Description: "Read pods, their logs, events and the objects around them, for evidence. Read-only; never reads Secrets."},
	{Name: "collect-pull-secrets", Rules: collect.PullSecretRules(), Description: "Opt-in, with kir-collect: read Secrets, to use a pod's imagePullSecrets when pulling its images (--pull-secrets)."},
	{Name: "rotate", Prefix: "rotate.", Rules: rotate.PlanRules(), Description: "Rotate credentials: list what a pod could read, issue kubeconfig tokens, delete a ServiceAccount's legacy token Secrets, recreate it (revoking its bound tokens) and restart the workloads that run as it. Secret stores authorise their own writes. kir asks for Secrets' metadata only, but this role reads every Secret's data and mints any ServiceAccount's token, cluster-wide: prefer kir-rotate-namespaced (docs/rbac.md)."},
	{Name: "rotate-x509", Prefix: "rotate-x509.", Description: "Opt-in: replace a compromised x509 client certificate (kir rotate kubeconfig --for user:NAME): move the user's RoleBindings and ClusterRoleBindings to a new user (bind on roles: it can grant what any role grants) and approve its CertificateSigningRequest for the kube-apiserver-client signer only. Grant it only for that."},
	{Name: "collect-checkpoint", Rules: collect.CheckpointRules(), Description: "Opt-in, with kir-collect: the kubelet checkpoint API through nodes/proxy, which also reaches exec: grant it only to who needs memory (--checkpoint)."},
}

func rulesOf(r action.Registry, prefix string) []rbacv1.PolicyRule {
	if prefix == "" {
		return nil
	}
	return r.Rules(prefix)
}

// baseRules are what every kir command needs: to learn who it acts as,
// (kir doctor) what it may do, and (the guard every run passes) what it
// must never target: the protect list and the pods and nodes it checks.
var baseRules = slices.Concat([]rbacv1.PolicyRule{
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
}, guard.Rules())

// ClusterRoles derives one least-privilege ClusterRole per capability from
// the rules its actions declare.
func ClusterRoles(r action.Registry) []rbacv1.ClusterRole {
	out := make([]rbacv1.ClusterRole, 0, len(Capabilities))
	for _, c := range Capabilities {
		out = append(out, rbacv1.ClusterRole{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        "kir-" + c.Name,
				Labels:      map[string]string{action.LabelManagedBy: action.ManagedByKir},
				Annotations: map[string]string{"kir.dev/description": c.Description},
			},
			Rules: slices.Concat(baseRules, rulesOf(r, c.Prefix), c.Rules),
		})
	}
	return out
}
