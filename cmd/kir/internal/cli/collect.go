package cli

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The evidence flags of kir collect pod and kir contain pod.
const (
	flagOut         = "out"
	flagKey         = "key"
	flagNoImages    = "no-images"
	flagPullSecrets = "pull-secrets"
	flagCheckpoint  = "checkpoint"
	flagNoEvidence  = "no-evidence"
)

// evidenceOptions are the evidence flags of kir collect pod and kir
// contain pod.
type evidenceOptions struct {
	out         string
	key         string
	noImages    bool
	pullSecrets bool
	checkpoint  bool
}

func (o *evidenceOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagOut, Usage: "evidence bundle: a new or empty DIR, or FILE.tar.gz (default STATE/evidence/RUN-ID)", Destination: &o.out},
		signingKeyFlag(&o.key, "private key to sign the bundle with (kir evidence keygen); without one the bundle is sealed unsigned"),
		&cli.BoolFlag{Name: flagNoImages, Usage: "do not store the containers' images", Destination: &o.noImages},
		&cli.BoolFlag{Name: flagPullSecrets, Usage: "pull images with the pod's imagePullSecrets (needs the kir-collect-pull-secrets role)", Destination: &o.pullSecrets},
		&cli.BoolFlag{Name: flagCheckpoint, Usage: "checkpoint running containers through the kubelet (needs the kir-collect-checkpoint role; the archive stays on the node and holds process memory)", Destination: &o.checkpoint},
	}
}

// signingKeyFlag is --key for a private key that signs evidence.
func signingKeyFlag(dst *string, usage string) cli.Flag {
	return &cli.StringFlag{Name: flagKey, Usage: usage, EnvVars: envVars("KIR_SIGNING_KEY"), Destination: dst}
}

// params are the collect-pod and contain-pod playbooks' evidence
// parameters. --out FILE.tar.gz seals the bundle in the state directory
// and packs it there. Paths are made absolute: the run's journal keeps
// them, and a resume may start elsewhere.
func (o *evidenceOptions) params() []param {
	out := param{flagOut, "bundle", absPath(o.out)}
	if strings.HasSuffix(o.out, ".tar.gz") {
		out.name = "archive"
	}
	return []param{
		out,
		{flagKey, "key", absPath(o.key)},
		{flagPullSecrets, "pullSecrets", o.pullSecrets},
		{flagCheckpoint, "checkpoint", o.checkpoint},
		{flagNoImages, "images", !o.noImages},
	}
}

func collectCommand() *cli.Command {
	return &cli.Command{
		Name:        "collect",
		Usage:       "collect evidence without changing anything",
		Subcommands: []*cli.Command{collectPodCommand()},
	}
}

// collectPodOptions are kir collect pod's flags.
type collectPodOptions struct {
	kube     kubeOptions
	write    writeOptions // no --dry-run: collecting changes nothing
	playbook playbookOptions
	evidence evidenceOptions
	target   targetOptions
}

func (o *collectPodOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.playbook.flags(), o.evidence.flags(), o.target.flags(), []cli.Flag{
		o.write.output.flag(),
		o.write.incidentFlag("incident id recorded in the bundle (default: generated)"),
	})
}

func collectPodCommand() *cli.Command {
	o := &collectPodOptions{}
	return &cli.Command{
		Name: "pod",
		Usage: "collect a pod's object, logs (every container, current and previous), events, the manifests around it " +
			"and its images by digest into a sealed bundle; kir evidence verify checks it",
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
			params := slices.Concat(podParams(s.namespace(o.target.namespace), name, o.target.selector), o.evidence.params())
			return o.playbook.run(c, s, "collect pod", "collect-pod", params)
		},
	}
}

// absPath makes a path given on the command line absolute; "" stays "".
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
