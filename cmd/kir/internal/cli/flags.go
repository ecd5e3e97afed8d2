package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kube"
)

// Flag names shared by several commands.
const (
	flagKubeconfig = "kubeconfig"
	flagContext    = "context"
	flagNamespace  = "namespace"
	flagSelector   = "selector"
	flagOutput     = "output"
	flagDryRun     = "dry-run"
	flagIncident   = "incident"
	flagQPS        = "kube-qps"
	flagBurst      = "kube-burst"
	flagTimeout    = "request-timeout"
)

// kubeFlags are the kubectl-style connection flags.
func kubeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagKubeconfig, Usage: "path to the kubeconfig file", EnvVars: []string{"KUBECONFIG"}},
		&cli.StringFlag{Name: flagContext, Usage: "kubeconfig context to use"},
		&cli.Float64Flag{Name: flagQPS, Value: kube.DefaultQPS, Usage: "client-side limit of API requests per second"},
		&cli.IntFlag{Name: flagBurst, Value: kube.DefaultBurst, Usage: "client-side burst of API requests"},
		&cli.DurationFlag{Name: flagTimeout, Value: kube.DefaultTimeout, Usage: "timeout of each API request"},
	}
}

func namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: flagNamespace, Aliases: []string{"n"}, Usage: "namespace (default: the kubeconfig context's)"}
}

func selectorFlag() cli.Flag {
	return &cli.StringFlag{Name: flagSelector, Aliases: []string{"l"}, Usage: "label selector, instead of a pod name"}
}

func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "text", Usage: "output format: text, json or yaml"}
}

// writeFlags are the flags of every command that changes a cluster.
func writeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagDryRun, Value: "none", Usage: "none, client (print the plan, send no write) or server (send writes with dryRun=All: validated, not persisted)"},
		&cli.StringFlag{Name: flagIncident, Usage: "incident id recorded on every object kir changes (default: generated)", EnvVars: []string{"KIR_INCIDENT"}},
		outputFlag(),
	}
}

// session is what a command that talks to a cluster works with.
type session struct {
	client    *kube.Client
	namespace string
	env       action.Env
	format    string
}

// connect builds the client and the action environment from the flags. It
// asks the API server who kir acts as; that first request also tells an
// unreachable server or bad credentials apart before anything is changed.
// newIncident says whether to generate an incident id when none is given:
// containment opens an incident, release belongs to the one on the objects.
func connect(ctx context.Context, c *cli.Context, newIncident bool) (*session, error) {
	s, err := offline(c, newIncident)
	if err != nil {
		return nil, err
	}
	kc, err := kube.New(kubeOptions(c))
	if err != nil {
		return nil, usageError{err}
	}
	s.namespace = c.String(flagNamespace)
	if s.namespace == "" {
		s.namespace = kc.Namespace
	}
	who, err := kube.WhoAmI(ctx, kc.Interface)
	if err != nil {
		return nil, err
	}
	s.client = kc
	s.env.Kube, s.env.Actor, s.env.Cluster, s.env.ClusterCA = kc.Interface, who.Username, kc.Config.Host, kc.CA()
	return s, nil
}

// offline is the session of a command that needs no cluster, such as the
// rotation of a secret in Vault: the output format, dry-run mode and
// incident, and no client.
func offline(c *cli.Context, newIncident bool) (*session, error) {
	format := c.String(flagOutput)
	if format == "" {
		format = "text"
	}
	switch format {
	case "text", "json", "yaml":
	default:
		return nil, usageError{fmt.Errorf("invalid --output %q: want text, json or yaml", format)}
	}
	dry := action.DryRunNone
	if c.IsSet(flagDryRun) || c.String(flagDryRun) != "" {
		var err error
		if dry, err = action.ParseDryRun(c.String(flagDryRun)); err != nil {
			return nil, usageError{err}
		}
	}
	incident := c.String(flagIncident)
	if incident == "" && newIncident {
		incident = newIncidentID(time.Now())
	}
	return &session{
		format: format,
		env:    action.Env{DryRun: dry, Incident: incident, Version: Version, Progress: c.App.ErrWriter},
	}, nil
}

// newIncidentID makes an id that sorts by time and is unique enough to
// name one incident: inc-20261125-204512-3f9a1c.
func newIncidentID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "inc-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// kubeOptions reads the connection flags of kubeFlags.
func kubeOptions(c *cli.Context) kube.Options {
	return kube.Options{
		Kubeconfig: c.String(flagKubeconfig), Context: c.String(flagContext),
		QPS: float32(c.Float64(flagQPS)), Burst: c.Int(flagBurst), Timeout: c.Duration(flagTimeout),
	}
}
