package contain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

// IsolateParams are the parameters of Isolate and of contain.isolate-pod.
type IsolateParams struct {
	Namespace        action.Namespace `json:"namespace" kir:"required" doc:"Namespace of the pod or pods."`
	Name             action.PodName   `json:"name,omitempty" doc:"Name of the pod to isolate. Give this or selector."`
	Selector         action.Selector  `json:"selector,omitempty" doc:"Label selector: isolate every pod it matches, each with its own policy."`
	AllowDNS         bool             `json:"allowDNS,omitempty" doc:"Allow egress to the cluster DNS pods (kube-system, k8s-app=kube-dns) on port 53."`
	AllowEgressCIDRs []string         `json:"allowEgressCIDRs,omitempty" doc:"Allow egress to these CIDRs. Default: nothing."`
	Detach           bool             `json:"detach,omitempty" doc:"Remove the labels the pod's controller and Services select on, so a clean replacement starts and traffic stops reaching it; the pod stays alive. The removed labels are recorded."`
	Parallelism      int              `json:"parallelism,omitempty" doc:"How many pods to isolate at once (default 32)."`
	KeepSessions     bool             `json:"keepSessions,omitempty" doc:"Ask the node agent to keep the pods' open sessions open (recorded on each policy as kir.dev/sessions: keep): it confirms the isolation but cuts nothing."`
	Freeze           bool             `json:"freeze,omitempty" doc:"Ask the node agent to freeze the pods' containers (cgroup freezer) right after it took their processes and sockets, so an implant that notices the cut cannot wipe itself (recorded on each policy as kir.dev/freeze: true); release thaws them. Liveness probes fail while frozen."`
}

func (p IsolateParams) target() Target {
	return Target{Namespace: string(p.Namespace), Name: string(p.Name), Selector: string(p.Selector)}
}

func (p IsolateParams) allow() AllowList {
	return AllowList{DNS: p.AllowDNS, EgressCIDRs: p.AllowEgressCIDRs}
}

// Validate checks the parameters without I/O.
func (p IsolateParams) Validate() error {
	errs := []error{p.target().validate(), p.allow().Validate(), action.CheckParam("namespace", p.Namespace), action.CheckParam("name", p.Name), action.CheckParam("selector", p.Selector)}
	if p.Parallelism < 0 {
		errs = append(errs, fmt.Errorf("parallelism must not be negative, got %d", p.Parallelism))
	}
	return errors.Join(errs...)
}

// IsolateOutput is the output of Isolate.
type IsolateOutput struct {
	// Pods are the outcomes, one per target pod, sorted by name.
	Pods []PodOutcome `json:"pods"`
	// Nodes are the distinct nodes running the target pods.
	Nodes []string `json:"nodes"`
	// AllowedEgress is what the quarantine policies still allow: "DNS",
	// then each CIDR (the allowDNS and allowEgressCIDRs parameters).
	AllowedEgress []string `json:"allowedEgress,omitempty"`
}

// PodOutcome is what happened to one pod.
type PodOutcome struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Node      string `json:"node,omitempty"`
	// Quarantine is the value of the pod's kir.dev/quarantine label.
	Quarantine string `json:"quarantine"`
	// Policy is the name of the pod's quarantine NetworkPolicy.
	Policy string `json:"policy"`
	// AlreadyContained is true when the pod was contained before this run.
	AlreadyContained bool `json:"alreadyContained"`
	// Fallback is set when the pod's quarantine label was refused and a
	// policy on its own labels isolates it instead (and the pods it names).
	Fallback *Fallback `json:"fallback,omitempty"`
	// DetachedLabels are the labels removed by --detach.
	DetachedLabels map[string]string `json:"detachedLabels,omitempty"`
	// OtherPolicies select the pod too and allow traffic: they weaken the
	// isolation, since NetworkPolicies are additive.
	OtherPolicies []Weakener `json:"otherPolicies,omitempty"`
	// HostNetwork pods are not isolated by any NetworkPolicy.
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// Error says what failed for this pod.
	Error string `json:"error,omitempty"`
}

// CNIWarning is said with every isolation.
const CNIWarning = "NetworkPolicies are enforced only by a network plugin (CNI) that implements them; check that this cluster's does"

// Isolate cuts the target pods off the network. For each pod it applies the
// quarantine label, alone, then a quarantine NetworkPolicy selecting only
// that label's value (deny all ingress and egress but the allow-list),
// which carries kir's record of the containment; optionally detaches the
// pod, and records an Event. A pod whose label is refused is isolated by a
// fallback policy on its own labels, and its error (ErrFallback) names the
// other pods that policy selects. It is idempotent: isolating a contained
// pod changes nothing.
func Isolate(ctx context.Context, env action.Env, p IsolateParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	pods, err := p.target().pods(ctx, env)
	if err != nil {
		return action.Result{}, err
	}
	// The policies that may weaken the isolation are only warned about:
	// their list (a consistent read the API server may hold for up to
	// ~100 ms until its watch cache catches up) runs beside the writes,
	// once the first quarantine policy is written, rather than before them.
	var (
		policies *networkingv1.NetworkPolicyList
		polErr   error
		listed   sync.WaitGroup
		listOnce sync.Once
	)
	iso := &isolator{env: env, p: p, j: &action.WriteLog{Dry: env.DryRun}, now: env.Now().UTC()}
	iso.policySent = func() {
		listOnce.Do(func() {
			listed.Go(func() {
				// kir's own quarantine policies never weaken an
				// isolation: the server leaves them out, or every
				// containment in a namespace would read all the others'.
				policies, polErr = env.Kube.NetworkingV1().NetworkPolicies(string(p.Namespace)).List(ctx, metav1.ListOptions{
					LabelSelector: action.LabelManagedBy + "!=" + action.ManagedByKir,
				})
			})
		})
	}
	if p.Detach {
		if iso.detacher, err = newDetacher(ctx, env.Kube, string(p.Namespace)); err != nil {
			return action.Result{}, err
		}
	}
	out := IsolateOutput{Pods: make([]PodOutcome, len(pods)), Nodes: nodesOf(pods), AllowedEgress: p.allow().allowed()}
	changed := make([]bool, len(pods))
	warnings := make([][]string, len(pods))
	podLabels := make([]map[string]string, len(pods))
	parallel := p.Parallelism
	if parallel == 0 {
		parallel = 32
	}
	runErr := forEach(ctx, pods, parallel, func(ctx context.Context, i int, pod *corev1.Pod) error {
		o, labels, ch, warn, err := iso.pod(ctx, pod)
		if err != nil {
			o.Error = err.Error()
		}
		out.Pods[i], podLabels[i], changed[i], warnings[i] = o, labels, ch, warn
		return err
	})
	iso.policySent() // if no pod got that far
	listed.Wait()
	res := action.Result{Output: out, Writes: iso.j.Writes(), Warnings: []string{CNIWarning}}
	if polErr != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("could not check which other NetworkPolicies weaken the isolation: listing NetworkPolicies in %s: %v", p.Namespace, polErr))
	}
	for i := range pods {
		res.Changed = res.Changed || changed[i]
		res.Warnings = append(res.Warnings, warnings[i]...)
		if polErr != nil || podLabels[i] == nil {
			continue
		}
		o := &out.Pods[i]
		o.OtherPolicies = weakeners(policies.Items, podLabels[i])
		for _, w := range o.OtherPolicies {
			res.Warnings = append(res.Warnings, fmt.Sprintf("pod %s/%s: NetworkPolicy %s also selects it and allows %v; policies are additive, so that traffic is still allowed", o.Namespace, o.Name, w.Name, w.Allows))
		}
	}
	return res, runErr
}

type isolator struct {
	env      action.Env
	p        IsolateParams
	j        *action.WriteLog
	detacher *detacher
	now      time.Time
	// policySent starts the list of the policies that may weaken the
	// isolation, once.
	policySent func()
}

// pod isolates one pod. podLabels are its labels once isolated, nil if it
// was not.
func (iso *isolator) pod(ctx context.Context, pod *corev1.Pod) (out PodOutcome, podLabels map[string]string, changed bool, warnings []string, err error) {
	env, value := iso.env, action.QuarantineValue(pod.UID)
	out = PodOutcome{
		Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName,
		Quarantine: value, Policy: action.PolicyName(value),
		AlreadyContained: pod.Labels[action.LabelQuarantine] == value,
		HostNetwork:      pod.Spec.HostNetwork,
	}
	id := pod.Namespace + "/" + pod.Name

	record := iso.record(pod)
	stored := pod // the object as the server holds it after this step
	rememberFirst := false
	if out.AlreadyContained {
		// What an earlier containment recorded wins: containing again must
		// not rewrite when, by whom or for which incident the pod was
		// contained. The record is on the policy, kir's own object.
		var (
			same bool
			old  *networkingv1.NetworkPolicy
		)
		if old, same, err = iso.keepRecord(ctx, pod, record, false); err != nil {
			return out, nil, false, nil, fmt.Errorf("isolating pod %s: %w", id, err)
		}
		changed = !same
		rememberFirst = iso.wider(old, pod, record)
	} else {
		// The label first, alone: the smallest write that makes the policy
		// select the pod, so nothing the pod carries can make it too
		// large. It isolates nothing until the policy exists, which then
		// isolates the pod in one step.
		got, err := iso.label(ctx, pod)
		if err != nil {
			if refused(err) {
				return iso.fallback(ctx, pod, out, record, err)
			}
			return out, nil, false, nil, fmt.Errorf("isolating pod %s: labelling it: %w", id, err)
		}
		if got != nil {
			stored = got
		}
		changed = true
	}

	// The memory of the quarantine for kir serve's tamper guard, which
	// leaves a policy tighter than its memory as it is: once the policy
	// stands (a new containment: before, there would be nothing to guard
	// yet, and the guard would write the policy too), but before a policy
	// that is not tighter than the one in place (containing again with
	// more allowed, or keeping sessions), lest the guard put the old one
	// back.
	if rememberFirst {
		if w := remember(ctx, env, iso.j, iso.quarantine(pod, record, nil)); w != "" {
			warnings = append(warnings, w)
		}
	}
	policy := QuarantinePolicy(pod, iso.p.allow(), record)
	err = iso.applyPolicy(ctx, pod, policy)
	if err != nil {
		return out, nil, changed, warnings, fmt.Errorf("isolating pod %s: applying NetworkPolicy %s: %w", id, out.Policy, err)
	}
	if !rememberFirst {
		if w := remember(ctx, env, iso.j, iso.quarantine(pod, record, nil)); w != "" {
			warnings = append(warnings, w)
		}
	}

	podLabels = merged(pod.Labels, map[string]string{action.LabelQuarantine: value})
	if iso.detacher != nil {
		removed, ch, err := iso.detacher.detach(ctx, env, iso.j, stored)
		out.DetachedLabels = removed
		if err != nil {
			return out, nil, changed, nil, fmt.Errorf("detaching pod %s: %w", id, err)
		}
		changed = changed || ch
		for k := range removed {
			delete(podLabels, k)
		}
	}

	if changed {
		msg := fmt.Sprintf("kir isolated this pod with NetworkPolicy %s (incident %s, by %s)", out.Policy, record[action.AnnotationIncident], env.Actor)
		if w := emitEvent(ctx, env, iso.j, podRef(pod), "Quarantined", msg); w != "" {
			warnings = append(warnings, w)
		}
	}
	if out.HostNetwork {
		warnings = append(warnings, fmt.Sprintf("pod %s uses the host network: no NetworkPolicy isolates it; contain its node", id))
	}
	return out, podLabels, changed, warnings, nil
}

// wider reports whether the quarantine about to be written for pod
// (labelled, with record) is not at least as tight as old, kir's policy
// in place: more allowed, sessions kept, no freeze, another record.
func (iso *isolator) wider(old *networkingv1.NetworkPolicy, pod *corev1.Pod, record map[string]string) bool {
	if old == nil {
		return false
	}
	was, _, err := ReadQuarantine(old)
	if err != nil {
		return false
	}
	return !was.Narrows(iso.quarantine(pod, record, nil), map[string]string{action.LabelQuarantine: action.QuarantineValue(pod.UID)})
}

// quarantine is the Quarantine the policy of pod holds: what the tamper
// guard remembers and restores. selector is a fallback policy's.
func (iso *isolator) quarantine(pod *corev1.Pod, record, selector map[string]string) Quarantine {
	return Quarantine{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, Allow: iso.p.allow(),
		Record: subset(record, restoredKeys), Selector: selector}
}

func applyOpts(env action.Env, manager string) metav1.ApplyOptions {
	return metav1.ApplyOptions{FieldManager: manager, Force: true, DryRun: env.DryRun.Opts()}
}
