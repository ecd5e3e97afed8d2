package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
)

// The agent's objects, in kir's namespace: Leases, since reading them
// reveals nothing (a ConfigMap could hold a secret) and kir's RBAC already
// covers them. A report Lease per quarantined pod, a heartbeat Lease per
// node.
const (
	// AnnotationReport holds a report Lease's Report (JSON).
	AnnotationReport = "kir.dev/enforcement"
	// LabelRole tells the agent's Leases apart: RoleReport or RoleHeartbeat.
	LabelRole     = "kir.dev/agent"
	RoleReport    = "report"
	RoleHeartbeat = "heartbeat"
	// LabelNode names the node an agent Lease is about.
	LabelNode = "kir.dev/node"

	// HeartbeatEvery is how often an agent renews its heartbeat; one
	// older than HeartbeatStale means no agent answers on that node.
	HeartbeatEvery = 10 * time.Second
	HeartbeatStale = 3 * HeartbeatEvery
)

// ReportName is the name of the report Lease of the pod with this
// quarantine label value.
func ReportName(quarantine string) string { return "kir-enforcement-" + quarantine }

// HeartbeatName is the name of the heartbeat Lease of the agent on node.
func HeartbeatName(node string) string { return "kir-node-agent-" + node }

// The states of a report.
const (
	// StateProbing: the agent saw the label and probes until the policy
	// is enforced.
	StateProbing = "probing"
	// StateEnforced: a probe from inside the pod's network namespace
	// failed where the host's control probe got through.
	StateEnforced = "enforced"
	// StateNotEnforced: the agent gave up probing (its own deadline); the
	// pod still reaches what it reached before.
	StateNotEnforced = "not-enforced"
	// StateUnconfirmable: the pod's probes failed from the first, before
	// its policy: the probe cannot tell whether the policy is enforced.
	// The agent cut the sessions all the same.
	StateUnconfirmable = "unconfirmable"
	// StateSkipped: the agent cannot confirm or cut (hostNetwork pod, no
	// network namespace found); Notes say why.
	StateSkipped = "skipped"
)

// Report is what a node agent found and did for one quarantined pod. The
// times are the node's clock.
type Report struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	UID       string `json:"uid"`
	Node      string `json:"node"`
	// PolicyUID is the UID of the quarantine policy this report answers:
	// a pod released and contained again has a new policy, and a report
	// of the old one is stale.
	PolicyUID string `json:"policyUID"`
	// Request is the run's request this report answers (the policy's
	// kir.dev/confirm): kir reads only the answer to its own.
	Request string `json:"request,omitempty"`
	State   string `json:"state"`
	// SeenAt is when the agent saw the quarantine label.
	SeenAt time.Time `json:"seenAt"`
	// EnforcedAt is when the first probe from the pod failed while the
	// control probe got through; EnforcedAfterMS is its distance from
	// SeenAt.
	EnforcedAt      *time.Time `json:"enforcedAt,omitempty"`
	EnforcedAfterMS int64      `json:"enforcedAfterMs,omitempty"`
	// ReachableBefore is true when a probe from the pod got through
	// before the policy was enforced: the target was a fair test.
	ReachableBefore bool `json:"reachableBefore"`
	// Probes are the last probe of each target.
	Probes []ProbeRecord `json:"probes,omitempty"`
	// Cut is what the agent did to the pod's open sessions; nil until the
	// isolation is enforced.
	Cut *CutRecord `json:"cut,omitempty"`
	// Capture is where the agent's capture of the pod's processes,
	// sockets and writable layers stands; nil when the agent keeps none.
	Capture *CaptureRecord `json:"capture,omitempty"`
	// Frozen is what the agent froze, when the policy asked.
	Frozen *FreezeRecord `json:"frozen,omitempty"`
	// Notes say what the agent could not do, plainly.
	Notes []string `json:"notes,omitempty"`
}

// ProbeRecord is one enforcement probe: a TCP connection to Target from
// inside the pod's network namespace, and the same from the host.
type ProbeRecord struct {
	Target  string `json:"target"`
	FromPod string `json:"fromPod"`
	Control string `json:"control"`
}

// CutRecord is what the agent cut once the isolation was enforced.
type CutRecord struct {
	// Kept is true when the policy asked that sessions stay open
	// (--no-cut): nothing was cut.
	Kept bool `json:"kept,omitempty"`
	// TCP and UDP count the sockets destroyed inside the pod's network
	// namespace (established or connected; never listening).
	TCP int `json:"tcp"`
	UDP int `json:"udp"`
	// Flows counts the conntrack entries of the pod's IPs deleted in the
	// host namespace.
	Flows int `json:"flows"`
	// Remaining counts the sockets and flows still there on the re-check.
	Remaining int `json:"remaining"`
	// At is when the cut ended.
	At time.Time `json:"at"`
	// Errors are what failed, per socket or step.
	Errors []string `json:"errors,omitempty"`
	// Notes say what the agent could not know.
	Notes []string `json:"notes,omitempty"`
}

// Sessions is the number of sessions cut.
func (c *CutRecord) Sessions() int {
	if c == nil {
		return 0
	}
	return c.TCP + c.UDP
}

// Final reports whether the agent is done with the pod: it gave up, or
// the isolation is enforced and the cut (or its refusal) is recorded.
func (r *Report) Final() bool {
	cuts := r.State == StateEnforced || r.State == StateUnconfirmable
	return r.State != StateProbing && (!cuts || r.Cut != nil)
}

// ReportOf decodes the report a Lease holds.
func ReportOf(l *coordinationv1.Lease) (*Report, error) {
	raw, ok := l.Annotations[AnnotationReport]
	if !ok {
		return nil, fmt.Errorf("lease %s/%s holds no %s annotation", l.Namespace, l.Name, AnnotationReport)
	}
	var r Report
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, fmt.Errorf("lease %s/%s: decoding its report: %w", l.Namespace, l.Name, err)
	}
	return &r, nil
}

// Alive reports whether a heartbeat Lease was renewed recently.
func Alive(l *coordinationv1.Lease, now time.Time) bool {
	if l == nil || l.Spec.RenewTime == nil {
		return false
	}
	return now.Sub(l.Spec.RenewTime.Time) < HeartbeatStale
}

// managed are the labels on every Lease the agent writes.
func managed(role, node string) map[string]string {
	return map[string]string{action.LabelManagedBy: action.ManagedByKir, LabelRole: role, LabelNode: node}
}

// Heartbeat is what a node's heartbeat Lease says of its agent.
type Heartbeat struct {
	// At is when the agent last renewed it.
	At time.Time
	// Endpoint is where it serves captures; nil when it serves none.
	Endpoint *Endpoint
}

// Heartbeats returns, per node, its agent's heartbeat in kir's namespace
// ns.
func Heartbeats(ctx context.Context, kube kubernetes.Interface, ns string) (map[string]Heartbeat, error) {
	ls, err := kube.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleHeartbeat})
	if err != nil {
		return nil, fmt.Errorf("listing the node agents' heartbeats in %s: %w", ns, err)
	}
	out := map[string]Heartbeat{}
	for _, l := range ls.Items {
		if node := l.Labels[LabelNode]; node != "" && l.Spec.RenewTime != nil {
			h := Heartbeat{At: l.Spec.RenewTime.Time}
			if e, ok := EndpointOf(&l); ok {
				h.Endpoint = &e
			}
			out[node] = h
		}
	}
	return out, nil
}
