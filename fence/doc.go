// Package fence is the Go source of kir's admission fence: the
// ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1) with which
// the API server itself keeps a quarantine on and keeps kir's own power to
// kir's marks, their bindings and their parameters. `make docs` renders
// them into deploy/components/admission/fence.yaml (Manifest); Check tells
// kir doctor and kir serve's tamper guard whether they are installed as
// generated.
//
// # The policies
//
//   - PolicyQuarantine, on pods labelled kir.dev/quarantine (UPDATE of
//     pods and every subresource, pods/status included, since the label
//     can be written through pods/status): nobody but kir's
//     ServiceAccounts and the responders' groups may remove or change the
//     label. With protectDeletion "true", nobody but the responders (and
//     the namespace controller, and whoever finishes a deletion already
//     begun) may delete such a pod: it is evidence. An eviction is not a
//     DELETE the policy sees (the Eviction carries no pod): RBAC on
//     pods/eviction is a right to delete.
//   - PolicyPolicies, on NetworkPolicies labelled
//     app.kubernetes.io/managed-by=kir and named kir-quarantine-* (a
//     matchCondition; CREATE, UPDATE and DELETE, judged on oldObject for
//     a DELETE): nobody but kir, the responders, the garbage collector
//     (kir's policy is owned by its pod) and the namespace controller may
//     create, change or delete them. CREATE too: one the tamper guard
//     takes for kir's could be forged (a kir-quarantine-<uid> of a
//     neighbour's pod: the guard would label and isolate that pod, and
//     record the forged incident's findings). kir's other policies, such
//     as kir serve's own ingress policy that whoever installs kir applies,
//     are not the fence's; nor is a policy labelled as kir's under another
//     name, which the guard reads as anyone's.
//   - PolicyNames, on NetworkPolicies created with a name
//     kir-quarantine-* (a matchCondition), labelled as kir's or not:
//     nobody but kir and the responders may create one. A workload
//     knows its own UID; a policy squatting its quarantine policy's name
//     before kir contains it would make kir serve's apply an update of a
//     policy not kir's, which PolicyKir refuses, or, applied by a
//     responder, keep the squatter's ingress rules in kir's policy.
//   - PolicyKir, on kir's ServiceAccounts only (a matchCondition): on a
//     pod, only kir.dev/ labels and annotations change, except the labels
//     --detach removes and release --reattach puts back, which must be
//     recorded in kir.dev/detached-labels (of the new object when removed,
//     of the old when restored); no spec, owner, finalizer or subresource.
//     On a node, only spec.unschedulable, kir's NoSchedule taint and
//     kir.dev/ annotations; no delete, no subresource. On NetworkPolicies,
//     only objects labelled as kir's, before and after, and only
//     quarantine policies: named kir-quarantine-*, declaring Ingress, with
//     no ingress rule. What stays possible with kir's token: removing
//     any pod's labels while recording them (that is what --detach does),
//     deleting and evicting pods (release --delete, drain), and egress
//     rules in its own policies (the allow-list).
//
// # Parameters
//
// ConfigMap ParamsName in kir's namespace: serviceAccounts
// ("namespace:name", comma-separated), responderGroups (comma-separated)
// and protectDeletion. The API server resolves parameters before it
// evaluates matchConditions, so parameterNotFoundAction is chosen per
// binding: Deny for the two protective policies, which match only kir's
// objects (a missing ConfigMap refuses every write to a quarantined pod,
// its status too, and to kir's policies, kir's own included, until it is
// restored); Allow for
// PolicyKir, which matches every pod, node and NetworkPolicy write in the
// cluster, where Deny would refuse them all, kubelets' and controllers'
// included, and for PolicyNames, which matches every NetworkPolicy
// created (a missing ConfigMap lets anyone squat a quarantine policy's
// name again). So deleting the ConfigMap lifts the limits on kir (not the
// quarantine's protection); kir's roles cannot delete or change it (and
// can create it only while it is missing), and Check reports it missing.
//
// # failurePolicy: Fail
//
// Every policy fails closed: a request the API server cannot evaluate
// (an error, a cost over the limit, a broken binding) is refused. An
// attacker who could make evaluation fail would otherwise get the write
// through. Refusal's cost is bounded by the match: the protective policies
// see only kir's labelled objects, PolicyKir only kir's own requests.
// Their expressions are linear in the object's labels and annotations:
// on a pod with 2,100 labels of the longest keys, kir's label write costs
// about 92,000 units of the 1,000,000 the API server allows an expression
// (cost_test.go), and the real API server answers hostile pods (2,100
// labels; 262,000 bytes of annotations) with the policy's own verdict
// (fence_test.go). The one path a cost error can decide: release
// --reattach of thousands of labels against a forged detached-labels
// record of ~256 KiB, where each label is looked up in the record; it is
// refused, which keeps the pod contained.
//
// # What the fence cannot do
//
// Admission policies cannot protect themselves: whoever may delete a
// ValidatingAdmissionPolicy or its binding lifts the fence. Check (kir
// doctor, the tamper guard) reports each object installed, missing or
// changed. Check compares specs field by field after setting what the API
// server defaults, so a policy read back compares equal to its source.
// The system exemptions name kube-controller-manager's controllers by
// their ServiceAccounts (--use-service-account-credentials, as kubeadm and
// managed clusters run it); a controller-manager that runs as one user
// is not exempt (kir's policies then block its namespace deletions).
package fence
