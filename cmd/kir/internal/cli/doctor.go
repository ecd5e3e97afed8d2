package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/agent"
	"kir.dev/kir/contain"
	"kir.dev/kir/fence"
	"kir.dev/kir/internal/kube"
)

// Diagnosis is the result of kir doctor (-o json).
type Diagnosis struct {
	Server  string         `json:"server"`
	Version string         `json:"version"`
	User    string         `json:"user"`
	Groups  []string       `json:"groups"`
	Actions []ActionAccess `json:"actions"`
	// Nodes say, per node, whether a node agent answers there.
	Nodes []NodeAgent `json:"nodes"`
	// NodesError says why the node agents could not be listed (kir's
	// roles need not list nodes or Leases).
	NodesError string `json:"nodesError,omitempty"`
	// Canary is the enforcement probe --probe-node ran, if asked.
	Canary *contain.Confirmation `json:"canary,omitempty"`
	// Fence is the state of the admission fence's objects
	// (deploy/components/admission); FenceError says why it could not be
	// read.
	Fence      fence.Report `json:"fence,omitempty"`
	FenceError string       `json:"fenceError,omitempty"`
	// Records says whether kir serve's response records and their
	// approvals policy are installed (deploy/components/records).
	Records RecordsCheck `json:"records"`
}

// NodeAgent says whether a node's agent answers.
type NodeAgent struct {
	Node string `json:"node"`
	// Agent is "answers" (heartbeat fresh), "silent" (stale) or "none".
	Agent string `json:"agent"`
	// LastHeartbeat is when it last renewed its heartbeat.
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
	// Captures names the agent's pod, which serves its captures of
	// quarantined pods to kir; empty when it serves none.
	Captures string `json:"captures,omitempty"`
}

// ActionAccess says whether kir may run one action here.
type ActionAccess struct {
	Action  string   `json:"action"`
	Allowed bool     `json:"allowed"`
	Missing []string `json:"missing,omitempty"` // "verb resource.group"
}

// doctorOptions are kir doctor's flags.
type doctorOptions struct {
	kube      kubeOptions
	namespace string
	output    outputOptions
	guard     guardOptions
	probe     string
	image     string
	enforce   time.Duration
}

func doctorCommand() *cli.Command {
	o := &doctorOptions{}
	return &cli.Command{
		Name:  "doctor",
		Usage: "can kir act here? API server reachable, who kir acts as, and the RBAC each action needs",
		Flags: flagsOf(o.kube.flags(), []cli.Flag{
			&cli.StringFlag{Name: flagNamespace, Aliases: []string{"n"}, Usage: "check namespaced permissions in this namespace only (default: all namespaces)", Destination: &o.namespace},
			o.output.flag(),
			o.guard.namespaceFlag(),
			&cli.StringFlag{Name: "probe-node", Usage: "run the enforcement probe on this node: a canary pod in kir's namespace, isolated, confirmed by the node agent, then released and deleted", Destination: &o.probe},
			&cli.StringFlag{Name: "canary-image", Value: contain.DefaultCanaryImage, Usage: "with --probe-node, the canary's image (anything that stays up)", Destination: &o.image},
			&cli.DurationFlag{Name: "enforce-timeout", Value: 10 * time.Second, Usage: "with --probe-node, how long to wait for the agent's confirmation", Destination: &o.enforce},
		}),
		Action: o.run,
	}
}

func (o *doctorOptions) run(c *cli.Context) error {
	kc, err := kube.New(o.kube.options())
	if err != nil {
		return usageError{err}
	}
	d, err := diagnose(c.Context, kc, o.namespace)
	if err != nil {
		return err
	}
	if d.Nodes, err = nodeAgents(c.Context, kc.Interface, o.guard.namespace); err != nil {
		d.NodesError = err.Error()
	}
	d.Records = checkRecords(c.Context, kc.Interface)
	if d.Fence, err = fence.Check(c.Context, kc.Interface, o.guard.namespace); err != nil {
		d.FenceError = err.Error()
	}
	var probeErr error
	if o.probe != "" {
		env := action.Env{Kube: kc.Interface, KirNamespace: o.guard.namespace, Incident: "doctor", Actor: d.User}
		conf, err := contain.Canary(c.Context, env, contain.CanaryParams{Node: o.probe, Image: o.image, Timeout: o.enforce})
		if err != nil {
			return err
		}
		d.Canary = &conf
		switch conf.State {
		case agent.StateEnforced:
		case agent.StateNotEnforced:
			probeErr = exitError{ExitNotEnforced, fmt.Errorf("node %s does not enforce NetworkPolicy: %s", o.probe, conf.Note)}
		default: // no agent, or nothing it could confirm: unknown, not "not enforced"
			probeErr = fmt.Errorf("node %s: the enforcement probe could not tell (%s): %s", o.probe, conf.State, conf.Note)
		}
	}
	if err := printDiagnosis(c.App.Writer, o.output.format, d); err != nil {
		return err
	}
	// Rotation is opt-in (the kir-rotate role): doctor reports it, and
	// fails only for what every response needs.
	for _, a := range d.Actions {
		if !a.Allowed && !strings.HasPrefix(a.Action, "rotate") {
			return forbiddenError{fmt.Errorf("kir may not run every action here (see above)")}
		}
	}
	return probeErr
}

// nodeAgents says, for every node, whether its agent answers.
func nodeAgents(ctx context.Context, c kubernetes.Interface, kirNS string) ([]NodeAgent, error) {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	beats, err := agent.Heartbeats(ctx, c, kirNS)
	if err != nil {
		return nil, err
	}
	out := []NodeAgent{}
	for _, n := range nodes.Items {
		na := NodeAgent{Node: n.Name, Agent: "none"}
		if b, ok := beats[n.Name]; ok {
			na.LastHeartbeat, na.Agent = &b.At, "silent"
			if time.Since(b.At) < agent.HeartbeatStale {
				na.Agent = "answers"
			}
			if b.Endpoint != nil {
				na.Captures = fmt.Sprintf("%s/%s:%d", b.Endpoint.Namespace, b.Endpoint.Pod, b.Endpoint.Port)
			}
		}
		out = append(out, na)
	}
	return out, nil
}

// forbiddenError maps to ExitForbidden.
type forbiddenError struct{ err error }

func (e forbiddenError) Error() string { return e.err.Error() }
func (e forbiddenError) Unwrap() error { return e.err }

func diagnose(ctx context.Context, kc *kube.Client, ns string) (Diagnosis, error) {
	d := Diagnosis{Server: kc.Config.Host}
	v, err := kc.Interface.Discovery().ServerVersion()
	if err != nil {
		return d, fmt.Errorf("reaching the API server at %s: %w", kc.Config.Host, err)
	}
	d.Version = v.GitVersion
	who, err := kube.WhoAmI(ctx, kc.Interface)
	if err != nil {
		return d, err
	}
	d.User, d.Groups = who.Username, who.Groups
	reg := registry()
	cache := map[string]bool{}
	for _, name := range reg.Names() {
		a, _ := reg.Get(name)
		acc := ActionAccess{Action: name, Allowed: true}
		missing, err := missingRules(ctx, kc.Interface, a.Spec(), ns, cache)
		if err != nil {
			return d, err
		}
		if len(missing) > 0 {
			acc.Allowed, acc.Missing = false, missing
		}
		d.Actions = append(d.Actions, acc)
	}
	return d, nil
}

// missingRules asks the API server, one SelfSubjectAccessReview per verb
// and resource, which of the spec's rules kir lacks.
func missingRules(ctx context.Context, c kubernetes.Interface, spec action.Spec, ns string, cache map[string]bool) ([]string, error) {
	var missing []string
	for _, rule := range spec.Rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range rule.Verbs {
					key := verb + " " + res + "." + g
					allowed, seen := cache[key]
					if !seen {
						r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
							Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
								Namespace: ns, Verb: verb, Group: g, Resource: resource, Subresource: sub,
							}},
						}, metav1.CreateOptions{})
						if err != nil {
							return nil, fmt.Errorf("checking %q: %w", key, err)
						}
						allowed = r.Status.Allowed
						cache[key] = allowed
					}
					if !allowed {
						missing = append(missing, strings.TrimSuffix(key, "."))
					}
				}
			}
		}
	}
	return missing, nil
}

func printDiagnosis(w io.Writer, format string, d Diagnosis) error {
	if format == "json" || format == "yaml" {
		return printStructured(w, format, d)
	}
	p := &textPrinter{w: w}
	p.line("API server  %s (%s): reachable", d.Server, d.Version)
	p.line("acting as   %s (groups: %s)", d.User, strings.Join(d.Groups, ", "))
	for _, a := range d.Actions {
		if a.Allowed {
			p.line("  ok       %s", a.Action)
		} else {
			p.line("  MISSING  %s: %s", a.Action, strings.Join(a.Missing, "; "))
		}
	}
	p.line("node agents (they confirm isolations and cut open sessions):")
	if d.NodesError != "" {
		p.line("  UNKNOWN  %s", d.NodesError)
	}
	for _, n := range d.Nodes {
		switch n.Agent {
		case "answers":
			if n.Captures != "" {
				p.line("  ok       %s: agent answers; serves its captures from %s", n.Node, n.Captures)
			} else {
				p.line("  ok       %s: agent answers; serves no captures (no --pod): processes, connections and written files are not collected", n.Node)
			}
		case "silent":
			p.line("  SILENT   %s: agent last seen %s", n.Node, n.LastHeartbeat.Format(time.RFC3339))
		default:
			p.line("  NONE     %s: no agent: isolations there are not confirmed and open sessions are not cut", n.Node)
		}
	}
	printRecords(p, d.Records)
	printFence(p, d)
	if d.Canary != nil {
		p.line("enforcement probe on %s:", d.Canary.Node)
		for _, l := range (contain.ConfirmOutput{Pods: []contain.Confirmation{*d.Canary}}).Text() {
			p.line("  %s", l)
		}
	}
	return p.err
}

// printFence says, per object, whether the admission fence is installed
// as this kir generates it. The fence is optional: doctor only reports.
func printFence(p *textPrinter, d Diagnosis) {
	p.line("admission fence (deploy/components/admission):")
	if d.FenceError != "" {
		p.line("  UNKNOWN  %s", d.FenceError)
	}
	for _, s := range d.Fence {
		switch s.State {
		case fence.Installed:
			p.line("  ok       %s %s", s.Kind, s.Name)
		case fence.Missing:
			p.line("  MISSING  %s %s", s.Kind, s.Name)
		default:
			p.line("  CHANGED  %s %s: %s", s.Kind, s.Name, s.Detail)
		}
	}
}
