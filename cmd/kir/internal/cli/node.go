package cli

import (
	"errors"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/agent"
	"kir.dev/kir/internal/kube"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:        "node",
		Usage:       "what runs on each node: the node agent",
		Subcommands: []*cli.Command{nodeAgentCommand()},
	}
}

// nodeAgentOptions are kir node agent's flags.
type nodeAgentOptions struct {
	kube     kubeOptions
	guard    guardOptions
	node     string
	procRoot string
	probeFor time.Duration
}

func nodeAgentCommand() *cli.Command {
	o := &nodeAgentOptions{}
	return &cli.Command{
		Name:  "agent",
		Usage: "on one node (deploy/components/node-agent): confirm each quarantined pod's isolation with probes from inside its network namespace, then cut its open sessions; report to kir",
		Description: "The agent runs as root on the node (hostNetwork, hostPID, NET_ADMIN and SYS_ADMIN): " +
			"whoever controls it controls the node. It watches only the quarantined pods of its node, decides nothing, " +
			"and writes only its Leases in kir's namespace (a heartbeat, one report per pod) and Events.",
		Flags: flagsOf(o.kube.flags(), []cli.Flag{
			o.guard.namespaceFlag(),
			&cli.StringFlag{Name: "node", Usage: "the node the agent runs on (in a DaemonSet: the downward API's spec.nodeName)", EnvVars: envVars("NODE_NAME"), Destination: &o.node, Required: true},
			&cli.StringFlag{Name: "proc", Value: "/proc", Usage: "the host's /proc (the agent needs the host's PID namespace)", Destination: &o.procRoot},
			&cli.DurationFlag{Name: "probe-for", Value: 2 * time.Minute, Usage: "how long to probe a pod before reporting its isolation not enforced", Destination: &o.probeFor},
		}),
		Action: o.run,
	}
}

func (o *nodeAgentOptions) run(c *cli.Context) error {
	if o.probeFor <= 0 {
		return usageError{errors.New("--probe-for must be positive")}
	}
	kc, err := kube.New(o.kube.options())
	if err != nil {
		return usageError{err}
	}
	return agent.Run(c.Context, agent.Config{
		Kube: kc.Interface, Node: o.node, Namespace: o.guard.namespace, ProcRoot: o.procRoot, ProbeFor: o.probeFor,
		Log: slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)),
	})
}
