package contain

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"kir.dev/kir/action"
)

// Actions returns this package's actions, as kir's registry and playbooks
// see them, each with the RBAC rules it needs.
func Actions() []action.Action {
	return []action.Action{
		action.Func[IsolateParams, IsolateOutput]{
			Name:    "contain.isolate-pod",
			Summary: "Cut a pod (or every pod a selector matches) off the network with a quarantine NetworkPolicy that selects only that pod; optionally detach it from its controller and Services. Where kir has a namespace, it remembers the quarantine there (a Lease kir-tamper-<pod UID>) for kir serve's tamper guard.",
			Rules: []rbacv1.PolicyRule{
				rule("", []string{"pods"}, "get", "list", "patch"),
				// Server-side apply creates the policy when it does not exist;
				// containing again reads the record on it.
				rule("networking.k8s.io", []string{"networkpolicies"}, "get", "list", "create", "patch"),
				// --detach reads the selectors of the pod's controller and Services.
				rule("", []string{"services"}, "list"),
				rule("", []string{"replicationcontrollers"}, "get"),
				rule("apps", []string{"replicasets", "statefulsets", "daemonsets"}, "get"),
				rule("batch", []string{"jobs"}, "get"),
				eventRule,
			},
			Do: Isolate,
		},
		action.Func[ConfirmParams, ConfirmOutput]{
			Name:    "contain.confirm-isolation",
			Summary: "Wait for the node agents to confirm that each isolated pod's quarantine policy is enforced and to report the open sessions they cut; fails with not-enforced when a pod still reaches what its policy denies.",
			Rules: []rbacv1.PolicyRule{
				// The run's request goes on the policy; the agent answers it.
				rule("networking.k8s.io", []string{"networkpolicies"}, "get", "patch"),
				// The agents' heartbeats and reports, in kir's namespace.
				rule("coordination.k8s.io", []string{"leases"}, "get"),
			},
			Do: Confirm,
		},
		action.Func[CordonParams, NodesOutput]{
			Name:    "contain.cordon-node",
			Summary: "Cordon nodes and add the kir.dev/quarantine:NoSchedule taint, recording whether kir cordoned each.",
			Rules:   []rbacv1.PolicyRule{rule("", []string{"nodes"}, "get", "update"), eventRule},
			Do:      Cordon,
		},
		action.Func[DrainParams, DrainOutput]{
			Name:    "contain.drain-node",
			Summary: "Evict a node's pods through the Eviction API, honouring PodDisruptionBudgets; quarantined pods are never evicted.",
			Rules: []rbacv1.PolicyRule{
				rule("", []string{"pods"}, "get", "list"),
				rule("", []string{"pods/eviction"}, "create"),
				rule("apps", []string{"daemonsets"}, "get"),
			},
			Do: Drain,
		},
		action.Func[ReleaseParams, ReleaseOutput]{
			Name:    "contain.release-pod",
			Summary: "Undo contain.isolate-pod: delete the quarantine policy, remove kir's label and annotations and the memory of the quarantine in kir's namespace; optionally reattach or delete the pod.",
			Rules: []rbacv1.PolicyRule{
				rule("", []string{"pods"}, "get", "list", "patch", "delete"),
				// A pod whose label never landed may still have a policy.
				rule("networking.k8s.io", []string{"networkpolicies"}, "get", "delete"),
				eventRule,
			},
			Do: Release,
		},
		action.Func[ReleaseNodeParams, NodesOutput]{
			Name:    "contain.release-node",
			Summary: "Remove kir's taint and uncordon the nodes kir cordoned, once no contained pod remains on them.",
			Rules: []rbacv1.PolicyRule{
				rule("", []string{"nodes"}, "get", "update"),
				rule("", []string{"pods"}, "list"),
				eventRule,
			},
			Do: ReleaseNode,
		},
	}
}

func rule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

var eventRule = rule("", []string{"events"}, "create")
