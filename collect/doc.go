// Package collect gathers the evidence of a compromised pod into an
// evidence.Sink, most volatile first (RFC 3227):
//
//	pod.json                           the pod as the API server returns it
//	checkpoint/<container>.json        where the kubelet put a checkpoint (opt-in)
//	logs/<container>[.previous].log    every container's log, with timestamps:
//	                                   its first and last bytes when longer than the limit
//	logs/<container>[.previous].log.cut.json  what was left out, the whole log's length and SHA-256
//	events/pod.json, events/node.json  Events about the pod and its node
//	manifests/<kind>/<name>.json       owners, node, ServiceAccount, Services,
//	                                   NetworkPolicies, RBAC, ConfigMaps
//	manifests/secret-references.json   the Secrets the pod uses, by name and key
//	images/images.json                 which container runs which image
//	images/<n>/                        each image, pulled by digest, as an OCI layout
//
// Every file carries an evidence.Source: where it came from, when, and the
// Audit-Id of the API request that read it (when the client was built with
// kube.AuditIDTransport). A part that fails or times out never stops the
// others: expected absences (no previous log, a runtime that cannot
// checkpoint) are recorded as custody notes, failures as custody notes too
// and returned, joined, at the end.
//
// collect never reads a Secret object, unless Options.PullSecrets asks it to
// build registry credentials from the pod's imagePullSecrets; even then no
// secret value is written anywhere. Rules, PullSecretRules and
// CheckpointRules are the RBAC each part needs.
package collect
