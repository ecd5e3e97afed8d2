package fence

// The CEL of the fence. Every expression is linear in the size of what it
// reads (a label or annotation map is walked once per direction, never one
// map per key of the other), so a hostile pod's 2,100 labels or 256 KiB of
// annotations cost a few tens of thousands of units, far below the API
// server's per-expression limit (1,000,000): see fence_test.go, which
// measures it on the real API server.

const (
	// The requester is one of kir's ServiceAccounts ("namespace:name" in
	// the parameter serviceAccounts). 22 is len("system:serviceaccount:").
	celKir = `request.userInfo.username.startsWith('system:serviceaccount:') &&
request.userInfo.username.substring(22) in params.?data.?serviceAccounts.orValue('').split(',').map(s, s.trim())`

	// The requester is in one of the responders' groups.
	celResponder = `params.?data.?responderGroups.orValue('').split(',').map(g, g.trim()).exists(g,
g != '' && g in request.userInfo.?groups.orValue([]))`

	// The cluster's own deleters: kir's policy is owned by its pod, and
	// namespaces must still delete.
	celSystem = `request.userInfo.username in ['system:serviceaccount:kube-system:generic-garbage-collector',
'system:serviceaccount:kube-system:namespace-controller']`

	// ' ' is no label value (label values are [A-Za-z0-9_.-]): it stands
	// for "absent".
	celQuarantineKept = `request.operation != 'UPDATE' || variables.kir || variables.responder ||
object.metadata.?labels[?'` + labelQuarantine + `'].orValue(' ') ==
oldObject.metadata.?labels[?'` + labelQuarantine + `'].orValue(' ')`

	celQuarantineMessage = `'only kir and the responders (groups ' + params.?data.?responderGroups.orValue('') +
') may remove or change the label ` + labelQuarantine + `; ' + request.userInfo.username + ' may not'`

	// A pod already terminating was allowed to be deleted: whoever
	// finishes the deletion (the kubelet) may.
	celDeletionAllowed = `request.operation != 'DELETE' || params.?data.?protectDeletion.orValue('false') != 'true' ||
variables.responder || has(oldObject.metadata.deletionTimestamp) ||
request.userInfo.username == 'system:serviceaccount:kube-system:namespace-controller'`

	celDeletionMessage = `'a quarantined pod is evidence: only the responders (groups ' +
params.?data.?responderGroups.orValue('') + ') may delete it; ' + request.userInfo.username + ' may not'`

	celPolicyKept = `variables.kir || variables.responder || variables.system`

	celPolicyMessage = `'only kir, the responders (groups ' + params.?data.?responderGroups.orValue('') +
'), the garbage collector and the namespace controller may create, change or delete NetworkPolicies labelled as kir\'s; ' +
request.userInfo.username + ' may not'`
)

// The names of kir's quarantine policies (policy PolicyNames).
const (
	celQuarantineName = `object.metadata.name.startsWith('kir-quarantine-')`
	// celKirPolicyName: the object a request on a NetworkPolicy concerns
	// (oldObject on DELETE) is named as kir's quarantine policies are.
	// kir's other NetworkPolicies (kir serve's own ingress policy, applied
	// by whoever installs kir) are not the fence's.
	celKirPolicyName = `(request.operation == 'DELETE' ? oldObject : object).metadata.name.startsWith('kir-quarantine-')`
	celNameReserved  = `variables.kir || variables.responder`
	celNameMessage   = `'NetworkPolicies named kir-quarantine-* are kir\'s: only kir and the responders (groups ' +
params.?data.?responderGroups.orValue('') + ') may create them; ' + request.userInfo.username + ' may not'`
)

// What kir's own ServiceAccounts may do (policy PolicyKir).
const (
	celIsNodes     = `request.resource.resource == 'nodes'`
	celNotPods     = `request.resource.resource != 'pods'`
	celNotNodes    = `request.resource.resource != 'nodes'`
	celNotPolicies = `request.resource.resource != 'networkpolicies'`

	celOldLabels = `oldObject.metadata.?labels.orValue({})`
	celNewLabels = `object.metadata.?labels.orValue({})`
	celOldAnnos  = `oldObject.metadata.?annotations.orValue({})`
	celNewAnnos  = `object.metadata.?annotations.orValue({})`
	// The labels --detach removed, as kir records them (JSON, keys and
	// values being label syntax, so '"key":"value"' is exact).
	celDetachedNow    = `object.metadata.?annotations[?'` + annotationDetached + `'].orValue('')`
	celDetachedBefore = `oldObject.metadata.?annotations[?'` + annotationDetached + `'].orValue('')`

	celKirAnnotationsOnly = `variables.oldAnnotations.all(k, k.startsWith('` + prefix + `') ||
(k in variables.newAnnotations && variables.newAnnotations[k] == variables.oldAnnotations[k])) &&
variables.newAnnotations.all(k, k.startsWith('` + prefix + `') || k in variables.oldAnnotations)`

	celSameOwners = `object.metadata.?ownerReferences.orValue([]) == oldObject.metadata.?ownerReferences.orValue([]) &&
object.metadata.?finalizers.orValue([]) == oldObject.metadata.?finalizers.orValue([])`

	celPodNoSubresource = celNotPods + ` || request.?subResource.orValue('') == ''`
	celPodSpecKept      = celNotPods + ` || (object.spec == oldObject.spec && ` + celSameOwners + `)`
	// A label removed is recorded as detached by the same write; a label
	// added (release --reattach) was recorded as detached before.
	celPodLabels = celNotPods + ` || (variables.oldLabels.all(k, k.startsWith('` + prefix + `') ||
(k in variables.newLabels && variables.newLabels[k] == variables.oldLabels[k]) ||
variables.detachedNow.contains('"' + k + '":"' + variables.oldLabels[k] + '"')) &&
variables.newLabels.all(k, k.startsWith('` + prefix + `') ||
(k in variables.oldLabels && variables.oldLabels[k] == variables.newLabels[k]) ||
variables.detachedBefore.contains('"' + k + '":"' + variables.newLabels[k] + '"')))`
	celPodAnnotations = celNotPods + ` || variables.kirAnnotationsOnly`

	celNotNodeUpdate  = `!(` + celIsNodes + ` && request.operation == 'UPDATE')`
	celNodeUpdateOnly = celNotNodes + ` || (request.operation == 'UPDATE' && request.?subResource.orValue('') == '')`
	celNodeMeta       = celNotNodeUpdate + ` || (variables.newLabels == variables.oldLabels &&
variables.kirAnnotationsOnly && ` + celSameOwners + `)`
	celNodeTaints = celNotNodeUpdate + ` || (
object.spec.?taints.orValue([]).filter(t, t.key != '` + taintKey + `') ==
oldObject.spec.?taints.orValue([]).filter(t, t.key != '` + taintKey + `') &&
object.spec.?taints.orValue([]).all(t, t.key != '` + taintKey + `' || t.effect == 'NoSchedule'))`
	celNodeSpec = celNotNodeUpdate + ` || (
object.spec.?podCIDR.orValue('') == oldObject.spec.?podCIDR.orValue('') &&
object.spec.?podCIDRs.orValue([]) == oldObject.spec.?podCIDRs.orValue([]) &&
object.spec.?providerID.orValue('') == oldObject.spec.?providerID.orValue('') &&
object.spec.?externalID.orValue('') == oldObject.spec.?externalID.orValue('') &&
has(object.spec.configSource) == has(oldObject.spec.configSource))`

	celKirLabelled = `.metadata.?labels[?'` + labelManagedBy + `'].orValue('') == '` + managedByKir + `'`
	celPolicyOwned = celNotPolicies + ` || (
(request.operation == 'DELETE' || object` + celKirLabelled + `) &&
(request.operation == 'CREATE' || oldObject` + celKirLabelled + `))`
	// kir's policies isolate: no ingress rule at all (contain/policy.go).
	celPolicyShape = celNotPolicies + ` || request.operation == 'DELETE' || (
object.metadata.name.startsWith('kir-quarantine-') &&
'Ingress' in object.spec.?policyTypes.orValue([]) &&
size(object.spec.?ingress.orValue([])) == 0)`
)
