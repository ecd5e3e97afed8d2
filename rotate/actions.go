package rotate

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"

	"kir.dev/kir/action"
)

// Actions returns this package's actions, as kir's registry and playbooks
// see them, reaching the secret stores as s says. The secret-store actions
// need no Kubernetes permission: Vault and Secrets Manager authorise them.
func Actions(s Stores) []action.Action {
	return []action.Action{
		action.Func[IssueSecretParams, SecretRotation]{
			Name:    "rotate.issue-secret",
			Summary: "Write a new value for a secret in Vault KV v2 (a new version, check-and-set against the one read) or Secrets Manager (a new AWSPENDING version under the rotation's ClientRequestToken); never logs or returns the value.",
			Do:      s.IssueSecret,
		},
		action.Func[HookParams, map[string]any]{
			Name:    "rotate.hook",
			Summary: "Run a set or test hook with a secret version's value on its standard input.",
			Do:      s.Hook,
		},
		action.Func[FinishParams, map[string]any]{
			Name:    "rotate.finish-secret",
			Summary: "Make a rotated secret's new version current: Secrets Manager moves AWSCURRENT to it and removes AWSPENDING; Vault made it current when it was written.",
			Do:      s.FinishSecret,
		},
		action.Func[FinishParams, map[string]any]{
			Name:    "rotate.rollback-secret",
			Summary: "Make the version current before a rotation current again (Vault: rewritten under check-and-set; Secrets Manager: AWSCURRENT moved back).",
			Do:      s.RollbackSecret,
		},
		action.Func[KubeconfigParams, SecretRotation]{
			Name:    "rotate.issue-kubeconfig",
			Summary: "Issue a short-lived token for a ServiceAccount (TokenRequest), build a kubeconfig around it and store it in Vault or Secrets Manager; never printed.",
			Rules:   []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}}},
			Do:      s.IssueKubeconfig,
		},
		ServiceAccountAction(),
		s.X509UserAction(),
		X509RestoreAction(),
		action.Func[SyncParams, SyncOutput]{
			Name:    "rotate.sync-kube-secret",
			Summary: "Copy a rotated value into the Kubernetes Secret that also holds it (the write names the key, never the value) and restart the workloads that use that Secret.",
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "patch"}},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"list", "patch"}},
			},
			Do: s.SyncKubeSecret,
		},
		action.Func[PodParams, PodOutput]{
			Name:    "rotate.pod-credentials",
			Summary: "Rotate everything compromised pods could read: their Vault and Secrets Manager secrets, and their ServiceAccounts' tokens (revoked: cannot be rolled back), or only one of the two (credentials); list what kir cannot rotate.",
			Rules:   slices.Concat(PlanRules(), ServiceAccountAction().Spec().Rules),
			Do:      s.RotatePodCredentials,
		},
	}
}
