package cli

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/action"
	"kir.dev/kir/guard"
	"kir.dev/kir/internal/kube"
)

// Flag structs. Each command keeps its flags' values in a struct of its
// own (containPodOptions, rotateSecretOptions, …) made of the groups
// below; a group's flags method returns its flags bound to its fields
// (Destination), so that a command body reads fields, never flags by name.
// A command's struct is made with the command, so each run of the app has
// its own.

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
	flagKirNS      = "kir-namespace"
	flagForce      = "force"
)

// kubeOptions are the kubectl-style connection flags.
type kubeOptions struct {
	kubeconfig string
	context    string
	qps        float64
	burst      int
	timeout    time.Duration
}

func (o *kubeOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagKubeconfig, Usage: "path to the kubeconfig file", EnvVars: envVars("KUBECONFIG"), Destination: &o.kubeconfig},
		&cli.StringFlag{Name: flagContext, Usage: "kubeconfig context to use", Destination: &o.context},
		&cli.Float64Flag{Name: flagQPS, Value: kube.DefaultQPS, Usage: "client-side limit of API requests per second", Destination: &o.qps},
		&cli.IntFlag{Name: flagBurst, Value: kube.DefaultBurst, Usage: "client-side burst of API requests", Destination: &o.burst},
		&cli.DurationFlag{Name: flagTimeout, Value: kube.DefaultTimeout, Usage: "timeout of each API request", Destination: &o.timeout},
	}
}

// options are the options of the Kubernetes client.
func (o *kubeOptions) options() kube.Options {
	return kube.Options{Kubeconfig: o.kubeconfig, Context: o.context, QPS: float32(o.qps), Burst: o.burst, Timeout: o.timeout}
}

// outputOptions is -o.
type outputOptions struct{ format string }

func (o *outputOptions) flag() cli.Flag {
	return &cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "text", Usage: "output format: text, json or yaml", Destination: &o.format}
}

// structured reports whether the output is JSON or YAML.
func (o *outputOptions) structured() bool { return o.format == "json" || o.format == "yaml" }

// check refuses a format kir does not print; "" is text.
func (o *outputOptions) check() error {
	switch o.format {
	case "":
		o.format = "text"
	case "text", "json", "yaml":
	default:
		return usageError{fmt.Errorf("invalid --output %q: want text, json or yaml", o.format)}
	}
	return nil
}

// writeOptions are the flags of every command that changes a cluster or a
// secret store.
type writeOptions struct {
	dryRun   string
	incident string
	output   outputOptions
}

func (o *writeOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagDryRun, Value: "none", Usage: "none, client (print the plan, send no write) or server (send writes with dryRun=All: validated, not persisted)", Destination: &o.dryRun},
		o.incidentFlag("incident id recorded on every object kir changes (default: generated)"),
		o.output.flag(),
	}
}

// incidentFlag is --incident, with what it is recorded on.
func (o *writeOptions) incidentFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: flagIncident, Usage: usage, EnvVars: envVars("KIR_INCIDENT"), Destination: &o.incident}
}

// dryRunMode parses --dry-run.
func (o *writeOptions) dryRunMode() (action.DryRun, error) {
	dry, err := action.ParseDryRun(o.dryRun)
	if err != nil {
		return "", usageError{err}
	}
	return dry, nil
}

// persists reports whether --dry-run lets writes take effect; an invalid
// mode is reported later, by the session.
func (o *writeOptions) persists() bool {
	dry, err := action.ParseDryRun(o.dryRun)
	return err == nil && dry.Persists()
}

// guardOptions say what the guard (package guard) protects and whether
// a person overrides it. Every playbook run the command line starts
// passes the guard; commands that act on pods or nodes take its flags.
type guardOptions struct {
	namespace string
	force     bool
}

// flags are --kir-namespace and the override, named force (contain node
// has kubectl drain's --force already: there it is --force-protected).
func (o *guardOptions) flags(force string) []cli.Flag {
	return []cli.Flag{
		o.namespaceFlag(),
		&cli.BoolFlag{Name: force, Usage: "act even on what kir never targets (kir's namespace, kube-system, the Falco namespace, the kir-protect list); recorded in the run's journal and evidence", Destination: &o.force},
	}
}

func (o *guardOptions) namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: flagKirNS, Value: guard.DefaultNamespace, Usage: "kir's own namespace: never a target, and where the ConfigMap " + guard.ConfigMap + " lists what else is not", EnvVars: envVars("KIR_NAMESPACE", "POD_NAMESPACE"), Destination: &o.namespace}
}

// guard is the guard the flags configure.
func (o *guardOptions) guard() *guard.Guard {
	return &guard.Guard{Namespace: o.namespace, Force: o.force}
}

// targetOptions name a command's pods besides its NAME argument.
type targetOptions struct {
	namespace string
	selector  string
}

func (o *targetOptions) flags() []cli.Flag {
	return []cli.Flag{o.namespaceFlag(), o.selectorFlag()}
}

func (o *targetOptions) namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: flagNamespace, Aliases: []string{"n"}, Usage: "namespace (default: the kubeconfig context's)", Destination: &o.namespace}
}

func (o *targetOptions) selectorFlag() cli.Flag {
	return &cli.StringFlag{Name: flagSelector, Aliases: []string{"l"}, Usage: "label selector, instead of a pod name", Destination: &o.selector}
}

// flagsOf concatenates flag sets.
func flagsOf(sets ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, s := range sets {
		out = append(out, s...)
	}
	return out
}
