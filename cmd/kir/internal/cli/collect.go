package cli

import (
	"path/filepath"
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

func evidenceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagOut, Usage: "evidence bundle: a new or empty DIR, or FILE.tar.gz (default STATE/evidence/RUN-ID)"},
		&cli.StringFlag{Name: flagKey, Usage: "private key to sign the bundle with (kir evidence keygen); without one the bundle is sealed unsigned", EnvVars: []string{"KIR_SIGNING_KEY"}},
		&cli.BoolFlag{Name: flagNoImages, Usage: "do not store the containers' images"},
		&cli.BoolFlag{Name: flagPullSecrets, Usage: "pull images with the pod's imagePullSecrets (needs the kir-collect-pull-secrets role)"},
		&cli.BoolFlag{Name: flagCheckpoint, Usage: "checkpoint running containers through the kubelet (needs the kir-collect-checkpoint role; the archive stays on the node and holds process memory)"},
	}
}

// evidenceParams maps the evidence flags to the collect-pod and
// contain-pod playbooks' parameters. --out FILE.tar.gz seals the bundle in
// the state directory and packs it there.
func evidenceParams(c *cli.Context, params map[string]any) map[string]any {
	// Absolute: the run's journal keeps them, and a resume may start
	// elsewhere.
	if out := absPath(c.String(flagOut)); strings.HasSuffix(out, ".tar.gz") {
		params["archive"] = out
	} else {
		params["bundle"] = out
	}
	params["key"] = absPath(c.String(flagKey))
	params["pullSecrets"] = c.Bool(flagPullSecrets)
	params["checkpoint"] = c.Bool(flagCheckpoint)
	if c.Bool(flagNoImages) {
		params["images"] = false
	}
	return params
}

func collectCommand() *cli.Command {
	return &cli.Command{
		Name:  "collect",
		Usage: "collect evidence without changing anything",
		Subcommands: []*cli.Command{
			{
				Name: "pod",
				Usage: "collect a pod's object, logs (every container, current and previous), events, the manifests around it " +
					"and its images by digest into a sealed bundle; kir evidence verify checks it",
				ArgsUsage: "NAME | -l SELECTOR",
				Flags: flagsOf(kubeFlags(), playbookFlags(), evidenceFlags(), []cli.Flag{
					namespaceFlag(), selectorFlag(), outputFlag(),
					&cli.StringFlag{Name: flagIncident, Usage: "incident id recorded in the bundle (default: generated)", EnvVars: []string{"KIR_INCIDENT"}},
				}),
				Action: func(c *cli.Context) error {
					name, err := oneNameOrSelector(c)
					if err != nil {
						return err
					}
					s, err := connect(c.Context, c, true)
					if err != nil {
						return err
					}
					return runPlaybook(c, s, "collect pod", "collect-pod", given(evidenceParams(c, map[string]any{
						"namespace": s.namespace, "name": name, "selector": c.String(flagSelector),
					})))
				},
			},
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
