package cli

import (
	"errors"
	"slices"
	"time"

	"github.com/urfave/cli/v2"
)

func containCommand() *cli.Command {
	return &cli.Command{
		Name:        "contain",
		Usage:       "cut a compromised pod or node off, keeping it for forensics",
		Subcommands: []*cli.Command{containPodCommand(), containNodeCommand()},
	}
}

// containPodOptions are kir contain pod's flags.
type containPodOptions struct {
	kube          kubeOptions
	write         writeOptions
	playbook      playbookOptions
	evidence      evidenceOptions
	target        targetOptions
	noEvidence    bool
	detach        bool
	allowDNS      bool
	allowEgress   cli.StringSlice
	noCordon      bool
	rotateSecrets bool
	enforce       time.Duration
	capture       time.Duration
	noCut         bool
	freeze        bool
}

func (o *containPodOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.write.flags(), o.playbook.flags(), o.evidence.flags(), o.target.flags(), o.playbook.guard.flags(flagForce), []cli.Flag{
		&cli.BoolFlag{Name: flagNoEvidence, Usage: "collect no evidence (by default the pod is recorded before anything changes, the rest collected once it is isolated)", Destination: &o.noEvidence},
		&cli.BoolFlag{Name: "detach", Usage: "remove the labels its controller and Services select on: a clean replacement starts, traffic stops, the pod stays alive", Destination: &o.detach},
		&cli.BoolFlag{Name: "allow-dns", Usage: "allow egress to the cluster DNS", Destination: &o.allowDNS},
		&cli.StringSliceFlag{Name: "allow-egress-cidr", Usage: "allow egress to this CIDR (repeatable)", Destination: &o.allowEgress},
		&cli.BoolFlag{Name: "no-cordon", Usage: "leave the pod's node schedulable and untainted", Destination: &o.noCordon},
		&cli.DurationFlag{Name: "enforce-timeout", Value: 10 * time.Second, Usage: "how long to wait for the node agent (kir node agent) to confirm that the pod's policy is enforced and to cut its open sessions; not confirmed in time ends with the not-enforced status", Destination: &o.enforce},
		&cli.DurationFlag{Name: "capture-timeout", Value: 2 * time.Minute, Usage: "how long to wait for the node agent's capture of the pod (processes, sockets, executables deleted from disk, writable layers) before sealing the evidence without it", Destination: &o.capture},
		&cli.BoolFlag{Name: "no-cut", Usage: "keep the pod's open sessions (its attacker's shell, say) open, to watch them: the node agent confirms the isolation but cuts nothing; recorded on the quarantine policy", Destination: &o.noCut},
		&cli.BoolFlag{Name: "freeze", Usage: "have the node agent freeze the pod's containers (cgroup freezer) once it took their processes and sockets, so an implant that notices the cut cannot wipe itself; kir release thaws them (liveness probes fail meanwhile)", Destination: &o.freeze},
		&cli.BoolFlag{Name: "rotate-secrets", Usage: "once isolated, rotate what the pod could read (kir rotate plan pod): its Vault and Secrets Manager secrets, then, once the evidence is sealed and approved (--yes, or a prompt), revoke its ServiceAccount's tokens, which cannot be rolled back; needs the kir-rotate role", Destination: &o.rotateSecrets},
		o.playbook.approval.flag("with --rotate-secrets, approve the revocation of the ServiceAccount's tokens now, as the person at this terminal; without it a terminal asks, and with none the run is held before it"),
	})
}

// params are the contain-pod playbook's parameters.
func (o *containPodOptions) params(namespace, name string) []param {
	return slices.Concat(podParams(namespace, name, o.target.selector), o.evidence.params(), []param{
		{"detach", "detach", o.detach},
		{"allow-dns", "allowDNS", o.allowDNS},
		{"allow-egress-cidr", "allowEgressCIDRs", o.allowEgress.Value()},
		{"no-cordon", "cordon", !o.noCordon},
		{flagNoEvidence, "evidence", !o.noEvidence},
		{"rotate-secrets", "rotateSecrets", o.rotateSecrets},
		{"enforce-timeout", "enforceTimeout", o.enforce.String()},
		{"capture-timeout", "captureTimeout", o.capture.String()},
		{"no-cut", "cut", !o.noCut},
		{"freeze", "freeze", o.freeze},
	})
}

func containPodCommand() *cli.Command {
	o := &containPodOptions{}
	return &cli.Command{
		Name:      "pod",
		Usage:     "isolate a pod with a quarantine NetworkPolicy that selects only it, and cordon and taint its node",
		ArgsUsage: "NAME | -l SELECTOR",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			name, err := oneNameOrSelector(c, o.target.selector)
			if err != nil {
				return err
			}
			s, err := online(c, &o.kube, &o.write, newIncident)
			if err != nil {
				return err
			}
			return o.playbook.run(c, s, "contain pod", "contain-pod", o.params(s.namespace(o.target.namespace), name))
		},
	}
}

// containNodeOptions are kir contain node's flags.
type containNodeOptions struct {
	kube         kubeOptions
	write        writeOptions
	playbook     playbookOptions
	drain        bool
	force        bool
	drainTimeout time.Duration
}

func (o *containNodeOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.write.flags(), o.playbook.flags(), o.playbook.guard.flags("force-protected"), []cli.Flag{
		&cli.BoolFlag{Name: "drain", Usage: "evict the node's pods through the Eviction API (honours PodDisruptionBudgets; never evicts a quarantined pod)", Destination: &o.drain},
		&cli.BoolFlag{Name: "force", Usage: "with --drain, also evict pods no controller manages", Destination: &o.force},
		&cli.DurationFlag{Name: "drain-timeout", Usage: "with --drain, how long to wait for evictions (default 5m)", Destination: &o.drainTimeout},
		o.playbook.approval.flag("with --drain, approve the drain now, as the person at this terminal; without it a terminal asks, and with none the run is held before it"),
	})
}

// params are the contain-node playbook's parameters.
func (o *containNodeOptions) params(node string) []param {
	return []param{
		arg("node", node),
		{"drain", "drain", o.drain},
		{"force", "force", o.force},
		{"drain-timeout", "drainTimeout", o.drainTimeout.String()},
	}
}

func containNodeCommand() *cli.Command {
	o := &containNodeOptions{}
	return &cli.Command{
		Name:      "node",
		Usage:     "cordon and taint a node, and with --drain evict its other pods",
		ArgsUsage: "NAME",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			node, err := oneName(c, "node")
			if err != nil {
				return err
			}
			s, err := online(c, &o.kube, &o.write, newIncident)
			if err != nil {
				return err
			}
			return o.playbook.run(c, s, "contain node", "contain-node", o.params(node))
		},
	}
}

// podParams are the parameters that name a playbook's pods: the
// namespace, and the NAME argument or -l.
func podParams(namespace, name, selector string) []param {
	ps := []param{arg("namespace", namespace), {flagSelector, "selector", selector}}
	if name != "" {
		ps = append(ps, arg("name", name))
	}
	return ps
}

// oneNameOrSelector returns the pod name argument, or "" with -l.
func oneNameOrSelector(c *cli.Context, selector string) (string, error) {
	switch {
	case c.NArg() == 0 && selector == "":
		return "", usageError{errors.New("give a pod NAME or -l SELECTOR")}
	case c.NArg() > 0 && selector != "":
		return "", usageError{errors.New("give a pod NAME or -l SELECTOR, not both")}
	case c.NArg() > 1:
		return "", usageError{errors.New("give one pod NAME (use -l SELECTOR for several)")}
	}
	return c.Args().First(), nil
}

func oneName(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usageError{errors.New("give exactly one " + what + " NAME")}
	}
	return c.Args().First(), nil
}
