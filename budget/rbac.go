package budget

import rbacv1 "k8s.io/api/rbac/v1"

// Rules are what a Budget reads and writes with, for a Role in kir's
// namespace: its one ConfigMap. Create cannot be limited to a name (the
// object does not exist yet); a deploy that ships an empty kir-budget may
// drop that rule, and a Budget without it fails closed if the object is
// deleted. `kir runs pause/resume` need these rules too; so does Status
// (get only).
func Rules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{ConfigMapName}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
	}
}

// ClusterRules are what counting the Ready nodes for the node share needs,
// for a ClusterRole: listing Nodes (Take of nodes and Status, unless
// Budget.ReadyNodes counts them otherwise).
func ClusterRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}},
	}
}
