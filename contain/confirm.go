package contain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/agent"
)

// ConfirmParams are the parameters of Confirm and of
// contain.confirm-isolation.
type ConfirmParams struct {
	// Pods are contain.isolate-pod's outcomes.
	Pods []PodOutcome `json:"pods" kir:"required" doc:"The isolated pods: contain.isolate-pod's output.pods."`
	// Timeout is how long to wait for the node agents' reports.
	Timeout string `json:"timeout,omitempty" doc:"How long to wait for each node agent to confirm the isolation (a Go duration; default 10s)."`
}

// Validate checks the parameters without I/O.
func (p ConfirmParams) Validate() error {
	if _, err := p.timeout(); err != nil {
		return err
	}
	return nil
}

func (p ConfirmParams) timeout() (time.Duration, error) {
	if p.Timeout == "" {
		return 10 * time.Second, nil
	}
	d, err := time.ParseDuration(p.Timeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout %q: want a positive duration such as 10s", p.Timeout)
	}
	return d, nil
}

// The states of a confirmation, beside the agent's own (agent.StateEnforced,
// agent.StateNotEnforced, agent.StateSkipped).
const (
	// StateUnconfirmed: no agent answers on the pod's node (or the pod is
	// held by a fallback policy the agent does not watch): nobody knows
	// whether the policy is enforced, and open sessions were not cut.
	StateUnconfirmed = "unconfirmed"
)

// ConfirmOutput is the output of Confirm.
type ConfirmOutput struct {
	// Request is what this run asked the node agents to answer.
	Request string         `json:"request"`
	Pods    []Confirmation `json:"pods"`
}

// ask puts the run's request on the pod's quarantine policy (its own
// annotation, under its own field manager), which the node agent answers.
func ask(ctx context.Context, env action.Env, j *action.WriteLog, pod PodOutcome, request string) (*networkingv1.NetworkPolicy, error) {
	apply := networkingv1ac.NetworkPolicy(pod.Policy, pod.Namespace).WithAnnotations(map[string]string{action.AnnotationConfirm: request})
	var got *networkingv1.NetworkPolicy
	err := j.Do(action.Write{Verb: "apply", Kind: "NetworkPolicy", Namespace: pod.Namespace, Name: pod.Policy, Body: apply}, func() (any, error) {
		// Only an existing policy of kir's: apply would create one.
		cur, err := env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, pod.Policy, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if cur.Labels[action.LabelManagedBy] != action.ManagedByKir {
			return nil, fmt.Errorf("NetworkPolicy %s/%s is not kir's", pod.Namespace, pod.Policy)
		}
		apply.WithUID(cur.UID)
		got, err = env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Apply(ctx, apply, applyOpts(env, action.FieldManagerConfirm))
		return got, err
	})
	return got, err
}

// newRequest is a run's request to the node agents: random, so that no
// two runs share one.
func newRequest() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Confirmation is what kir learned of one pod's isolation from its node.
type Confirmation struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`
	State     string `json:"state"`
	// Report is the node agent's report, as it stood when kir stopped
	// waiting.
	Report *agent.Report `json:"report,omitempty"`
	// Note says why the state is not enforced, plainly.
	Note string `json:"note,omitempty"`
}

// Confirm waits for the node agents to confirm that each isolated pod's
// policy is enforced, and to report the open sessions they cut. A pod
// whose agent answers but does not see the policy enforced in time fails
// with action.ErrNotEnforced: a cluster whose network plugin ignores
// NetworkPolicy never reads as contained. A pod without an agent is
// unconfirmed, said in a warning: its open sessions were not cut.
func Confirm(ctx context.Context, env action.Env, p ConfirmParams) (action.Result, error) {
	env = env.Defaults()
	timeout, err := p.timeout()
	if err != nil {
		return action.Result{}, err
	}
	out := ConfirmOutput{Pods: make([]Confirmation, len(p.Pods))}
	request, err := newRequest()
	if err != nil {
		return action.Result{}, err
	}
	out.Request = request
	if !env.DryRun.Persists() {
		for i, pod := range p.Pods {
			out.Pods[i] = Confirmation{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Node, State: StateUnconfirmed, Note: "dry run: nothing was isolated"}
		}
		return action.Result{Output: out}, nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	agents := agentsOf(ctx, env, p.Pods)
	j := &action.WriteLog{Dry: env.DryRun}
	var wg sync.WaitGroup
	for i, pod := range p.Pods {
		wg.Go(func() { out.Pods[i] = confirmPod(parent, ctx, env, j, pod, agents[pod.Node], request, timeout) })
	}
	wg.Wait()
	res := action.Result{Output: out, Writes: j.Writes(), Changed: len(j.Writes()) > 0}
	if err := parent.Err(); err != nil {
		return res, err
	}
	var errs []error
	for _, c := range out.Pods {
		switch c.State {
		case agent.StateNotEnforced:
			errs = append(errs, fmt.Errorf("pod %s/%s: %w: %s", c.Namespace, c.Name, action.ErrNotEnforced, c.Note))
		case StateUnconfirmed, agent.StateSkipped:
			res.Warnings = append(res.Warnings, fmt.Sprintf("pod %s/%s: isolation not confirmed: %s", c.Namespace, c.Name, c.Note))
		}
	}
	return res, errors.Join(errs...)
}

// agentsOf reads the heartbeat of each node's agent, once per node: ""
// when it answers, else why not.
func agentsOf(ctx context.Context, env action.Env, pods []PodOutcome) map[string]string {
	out := map[string]string{}
	leases := env.Kube.CoordinationV1().Leases(env.KirNamespace)
	for _, pod := range pods {
		if _, done := out[pod.Node]; done || pod.Node == "" {
			continue
		}
		name := agent.HeartbeatName(pod.Node)
		hb, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err != nil && !apierrors.IsNotFound(err):
			out[pod.Node] = fmt.Sprintf("reading the node agent's heartbeat (Lease %s/%s): %v; open sessions may not have been cut", env.KirNamespace, name, err)
		case err != nil || !agent.Alive(hb, time.Now()):
			out[pod.Node] = fmt.Sprintf("no kir node agent answers on node %s (no fresh Lease %s/%s): nobody checked that the network plugin enforces the policy, and open sessions (a reverse shell, say) were NOT cut", pod.Node, env.KirNamespace, name)
		default:
			out[pod.Node] = ""
		}
	}
	return out
}

// confirmPod waits for one pod's report; noAgent says why its node has
// no agent to ask, if it has none.
func confirmPod(parent, ctx context.Context, env action.Env, j *action.WriteLog, pod PodOutcome, noAgent, request string, timeout time.Duration) Confirmation {
	c := Confirmation{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Node, State: StateUnconfirmed}
	switch {
	case pod.Error != "" && pod.Fallback == nil:
		c.Note = "the pod was not isolated"
		return c
	case pod.HostNetwork:
		c.State, c.Note = agent.StateSkipped, "the pod uses the host's network: no NetworkPolicy isolates it, and its open sessions were not cut"
		return c
	case pod.Fallback != nil:
		c.Note = "a fallback policy on its own labels isolates it; the node agent confirms only quarantine labels, so its open sessions were not cut"
		return c
	case pod.Node == "":
		c.Note = "the pod is not scheduled on a node"
		return c
	}
	if noAgent != "" {
		c.Note = noAgent
		return c
	}
	policy, err := ask(ctx, env, j, pod, request)
	if err != nil {
		c.Note = fmt.Sprintf("asking the node agent through the quarantine policy %s: %v", pod.Policy, err)
		return c
	}
	return waitReport(parent, ctx, env, pod, string(policy.UID), request, timeout, c)
}

// waitReport polls the pod's report Lease until the agent is done with
// this policy or ctx ends.
func waitReport(parent, ctx context.Context, env action.Env, pod PodOutcome, policyUID, request string, timeout time.Duration, c Confirmation) Confirmation {
	leases := env.Kube.CoordinationV1().Leases(env.KirNamespace)
	name := agent.ReportName(pod.Quarantine)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if l, err := leases.Get(ctx, name, metav1.GetOptions{}); err == nil {
			// A report of this policy, this pod, from the pod's own node:
			// another node's agent cannot speak for it.
			if r, err := agent.ReportOf(l); err == nil && r.PolicyUID == policyUID && r.Request == request && r.UID == pod.UID && r.Node == pod.Node && l.Labels[agent.LabelNode] == pod.Node {
				c.Report = r
				if r.Final() {
					c.State, c.Note = r.State, strings.Join(r.Notes, "; ")
					if r.State == agent.StateUnconfirmable {
						c.State = StateUnconfirmed
					}
					return c
				}
			}
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				c.Note = "interrupted while waiting for the node agent"
				return c // unconfirmed: kir was stopped, the node said nothing
			}
			if c.Report != nil && c.Report.State == agent.StateEnforced {
				c.State, c.Note = agent.StateEnforced, fmt.Sprintf("the node agent on %s confirmed the isolation but had not reported its cut within %s", pod.Node, timeout)
				return c
			}
			c.State = agent.StateNotEnforced
			switch {
			case c.Report == nil:
				c.Note = fmt.Sprintf("the node agent on %s did not report within %s", pod.Node, timeout)
			case len(c.Report.Probes) == 0:
				c.Note = fmt.Sprintf("the node agent on %s had not probed the pod within %s (%s)", pod.Node, timeout, strings.Join(c.Report.Notes, "; "))
			default:
				c.Note = fmt.Sprintf("within %s the pod still reached what its policy denies (node agent on %s); its open sessions were not cut", timeout, pod.Node)
			}
			return c
		case <-tick.C:
		}
	}
}
