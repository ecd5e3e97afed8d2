package catalog

import (
	"cmp"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/guard"
	"kir.dev/kir/rotate"
)

// The roles of the namespaced rotation option
// (deploy/components/rotate-namespaced).
const (
	// RotateNamespacedRole is a ClusterRole meant for RoleBindings only:
	// bound in a namespace, it grants kir-rotate's rules there and nowhere
	// else.
	RotateNamespacedRole = "kir-rotate-namespaced"
	// RotateClusterRole holds the cluster-scoped rules rotation needs
	// wherever it runs; none reaches a Secret or mints a token.
	RotateClusterRole = "kir-rotate-cluster"
	// ProtectListRole is a Role in kir's namespace that reads the guard's
	// protect list, and nothing else there.
	ProtectListRole = "kir-read-protect-list"
)

// clusterScoped are the cluster-scoped resources kir's rules name: a
// RoleBinding cannot grant them.
var clusterScoped = map[string][]string{
	"":                          {"nodes", "namespaces"},
	"authentication.k8s.io":     {"selfsubjectreviews", "tokenreviews"},
	"authorization.k8s.io":      {"selfsubjectaccessreviews", "subjectaccessreviews"},
	"certificates.k8s.io":       {"certificatesigningrequests", "signers"},
	"external-secrets.io":       {"clustersecretstores"},
	"rbac.authorization.k8s.io": {"clusterroles", "clusterrolebindings"},
}

func isClusterScoped(group, resource string) bool {
	base, _, _ := strings.Cut(resource, "/")
	return slices.Contains(clusterScoped[group], base)
}

// RotateNamespacedRoles derives the roles of the namespaced rotation
// option from what the rotate.* actions (not rotate-x509.*, whose objects
// are cluster-scoped) and the guard declare: kir-rotate's namespaced
// rules, to bind per namespace; the cluster-scoped ones it cannot do
// without (who am I, what may I do, is this token still valid); and the
// protect list in kir's namespace. Nodes are left out: no rotation
// targets a node. So are ClusterSecretStores: without them, a plan names
// the ExternalSecrets it cannot place instead of their remote secrets.
func RotateNamespacedRoles(r action.Registry) (namespaced, cluster rbacv1.ClusterRole, protect rbacv1.Role) {
	all := slices.Concat(r.Rules("rotate."), rotate.PlanRules(), guard.Rules())
	var ns []rbacv1.PolicyRule
	for _, rule := range all {
		if len(rule.ResourceNames) > 0 {
			continue // the protect list, below: in kir's namespace only
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				if !isClusterScoped(g, res) {
					ns = append(ns, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: rule.Verbs})
				}
			}
		}
	}
	meta := func(name, description string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{action.LabelManagedBy: action.ManagedByKir},
			Annotations: map[string]string{"kir.dev/description": description},
		}
	}
	clusterRole := metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}
	namespaced = rbacv1.ClusterRole{
		TypeMeta: clusterRole,
		ObjectMeta: meta(RotateNamespacedRole, "kir-rotate's rules, for RoleBindings only (one per namespace whose credentials kir may rotate; "+
			"never a ClusterRoleBinding). In each such namespace: read and delete every Secret (list returns their data, whatever kir asks for), "+
			"mint a token for any ServiceAccount, recreate ServiceAccounts and patch Deployments, StatefulSets and DaemonSets."),
		Rules: mergeRules(ns),
	}
	cluster = rbacv1.ClusterRole{
		TypeMeta: clusterRole,
		ObjectMeta: meta(RotateClusterRole, "With kir-rotate-namespaced: the cluster-scoped requests rotation makes anywhere: "+
			"who am I, what may I do (kir doctor and the check before a rotation writes), and TokenReview, which confirms a revoked token is rejected "+
			"(it tells whether any token is valid, and whose). No Secret, no token, no write."),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews", "tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
		},
	}
	protect = rbacv1.Role{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(ProtectListRole, "Read the guard's protect list ("+guard.ConfigMap+"), which every run reads first: "+
			"without it every rotation is refused. Nothing else in "+guard.DefaultNamespace+"."),
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{guard.ConfigMap}, Verbs: []string{"get"}}},
	}
	protect.Namespace = guard.DefaultNamespace
	return namespaced, cluster, protect
}

// mergeRules merges rules of one group and resource each into one rule,
// verbs sorted, ordered by group then resource.
func mergeRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct{ group, resource string }
	verbs := map[key][]string{}
	for _, r := range rules {
		k := key{r.APIGroups[0], r.Resources[0]}
		verbs[k] = append(verbs[k], r.Verbs...)
	}
	keys := make([]key, 0, len(verbs))
	for k := range verbs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.resource, b.resource)) })
	out := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		v := verbs[k]
		slices.Sort(v)
		out = append(out, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: slices.Compact(v)})
	}
	return out
}
