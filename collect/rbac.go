package collect

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// Rules are the RBAC rules Pod needs for everything but PullSecrets and
// Checkpoint, at cluster scope: read-only, and no Secrets. PodManifest
// needs the first rule alone.
func Rules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule("", []string{"pods"}, "get"),
		rule("", []string{"pods/log"}, "get"),
		// Pod events by namespace; node events in whatever namespace
		// their reporter chose.
		rule("", []string{"events"}, "list"),
		rule("", []string{"nodes", "serviceaccounts", "configmaps", "replicationcontrollers"}, "get"),
		rule("", []string{"services"}, "list"),
		rule("apps", []string{"replicasets", "deployments", "statefulsets", "daemonsets"}, "get"),
		rule("batch", []string{"jobs", "cronjobs"}, "get"),
		rule("networking.k8s.io", []string{"networkpolicies"}, "list"),
		rule("rbac.authorization.k8s.io", []string{"rolebindings", "clusterrolebindings"}, "list"),
		rule("rbac.authorization.k8s.io", []string{"roles", "clusterroles"}, "get"),
	}
}

// PullSecretRules are what Options.PullSecrets adds: reading the pod's
// image pull Secrets to authenticate to its registries.
func PullSecretRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{rule("", []string{"secrets"}, "get")}
}

// CheckpointRules are what Options.Checkpoint adds: POST to the kubelet's
// checkpoint API through the API server's node proxy. nodes/proxy reaches
// every kubelet endpoint (exec included): grant it only to responders who
// need checkpoints.
func CheckpointRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{rule("", []string{"nodes/proxy"}, "create")}
}

func rule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}
