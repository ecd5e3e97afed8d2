package cli

import (
	"errors"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/agent"
	"kir.dev/kir/agent/layer"
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

	captureDir    string
	hostRoot      string
	layerMaxBytes int64
	listen        string
	pod, podNS    string
}

func nodeAgentCommand() *cli.Command {
	o := &nodeAgentOptions{}
	return &cli.Command{
		Name:  "agent",
		Usage: "on one node (deploy/components/node-agent): confirm each quarantined pod's isolation with probes from inside its network namespace, then cut its open sessions; capture its processes, sockets and writable layers for kir; report to kir",
		Description: "The agent runs as root on the node (hostNetwork, hostPID, NET_ADMIN, SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH): " +
			"whoever controls it controls the node. It watches only the quarantined pods of its node, decides nothing, " +
			"and writes only its Leases in kir's namespace (a heartbeat, one report per pod) and Events. " +
			"Its captures are served to kir through the API server's pods/proxy, over TLS, each request with the key whose hash kir put on the pod's quarantine policy.",
		Flags: flagsOf(o.kube.flags(), []cli.Flag{
			o.guard.namespaceFlag(),
			&cli.StringFlag{Name: "node", Usage: "the node the agent runs on (in a DaemonSet: the downward API's spec.nodeName)", EnvVars: envVars("NODE_NAME"), Destination: &o.node, Required: true},
			&cli.StringFlag{Name: "proc", Value: "/proc", Usage: "the host's /proc (the agent needs the host's PID namespace)", Destination: &o.procRoot},
			&cli.DurationFlag{Name: "probe-for", Value: 2 * time.Minute, Usage: "how long to probe a pod before reporting its isolation not enforced", Destination: &o.probeFor},
			&cli.StringFlag{Name: "capture-dir", Value: "/var/lib/kir-agent/captures", Usage: "where the captures of quarantined pods (processes, sockets, executables deleted from disk, writable layers) are kept until kir fetches them and the pod is released; empty takes none", Destination: &o.captureDir},
			&cli.StringFlag{Name: "host-root", Usage: "where the host's file system is seen, to read the containers' writable layers (default: the host init's root, PROC/1/root, which needs CAP_SYS_PTRACE; / for an agent run on the host itself)", Destination: &o.hostRoot},
			&cli.Int64Flag{Name: "layer-max-bytes", Value: layer.DefaultMaxBytes, Usage: "byte budget of one container's writable layer in a capture: files past it are listed as skipped, with their sizes", Destination: &o.layerMaxBytes},
			&cli.StringFlag{Name: "listen", Value: ":9464", Usage: "address to serve captures on, over TLS, to kir through the API server's pods/proxy; each request needs the key whose hash kir put on the pod's quarantine policy", Destination: &o.listen},
			&cli.StringFlag{Name: "pod", Usage: "the agent's own pod (downward API metadata.name), which kir reaches through pods/proxy; empty serves no captures", EnvVars: envVars("POD_NAME"), Destination: &o.pod},
			&cli.StringFlag{Name: "pod-namespace", Usage: "the agent's own namespace (downward API metadata.namespace)", EnvVars: envVars("POD_NAMESPACE"), Destination: &o.podNS},
		}),
		Action: o.run,
	}
}

func (o *nodeAgentOptions) run(c *cli.Context) error {
	if o.probeFor <= 0 {
		return usageError{errors.New("--probe-for must be positive")}
	}
	if o.layerMaxBytes <= 0 {
		return usageError{errors.New("--layer-max-bytes must be positive")}
	}
	if o.pod != "" && o.podNS == "" {
		return usageError{errors.New("--pod needs --pod-namespace")}
	}
	kc, err := kube.New(o.kube.options())
	if err != nil {
		return usageError{err}
	}
	return agent.Run(c.Context, agent.Config{
		Kube: kc.Interface, Node: o.node, Namespace: o.guard.namespace, ProcRoot: o.procRoot, ProbeFor: o.probeFor,
		CaptureDir: o.captureDir, HostRoot: o.hostRoot, LayerMaxBytes: o.layerMaxBytes, Listen: o.listen, Pod: o.pod, PodNamespace: o.podNS,
		Log: slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)),
	})
}
