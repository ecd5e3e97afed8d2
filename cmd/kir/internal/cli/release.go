package cli

import (
	"github.com/urfave/cli/v2"
)

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:  "release",
		Usage: "undo exactly what kir contain did",
		Subcommands: []*cli.Command{
			{
				Name:      "pod",
				Usage:     "delete a pod's quarantine policy, restore its labels and annotations, and release its node once no contained pod remains there",
				ArgsUsage: "NAME | -l SELECTOR",
				Flags: flagsOf(kubeFlags(), writeFlags(), playbookFlags(), []cli.Flag{
					namespaceFlag(), selectorFlag(),
					&cli.BoolFlag{Name: "reattach", Usage: "put back the labels --detach removed (its controller then re-adopts it and may delete a surplus replica)"},
					&cli.BoolFlag{Name: "delete", Usage: "delete the pod once released"},
					&cli.StringFlag{Name: "evidence", Usage: "the containment's sealed evidence bundle (a directory): the release is appended, signed, to its custody log"},
					&cli.StringFlag{Name: flagKey, Usage: "private key the bundle was sealed with", EnvVars: []string{"KIR_SIGNING_KEY"}},
				}),
				Action: func(c *cli.Context) error {
					name, err := oneNameOrSelector(c)
					if err != nil {
						return err
					}
					s, err := connect(c.Context, c, false)
					if err != nil {
						return err
					}
					return runPlaybook(c, s, "release pod", "release-pod", given(map[string]any{
						"namespace": s.namespace, "name": name, "selector": c.String(flagSelector),
						"reattach": c.Bool("reattach"), "delete": c.Bool("delete"),
						"evidence": absPath(c.String("evidence")), "key": absPath(c.String(flagKey)),
					}))
				},
			},
			{
				Name:      "node",
				Usage:     "remove kir's taint and uncordon the node if kir cordoned it",
				ArgsUsage: "NAME",
				Flags: flagsOf(kubeFlags(), writeFlags(), playbookFlags(), []cli.Flag{
					&cli.BoolFlag{Name: "force", Usage: "release the node even while contained pods remain on it"},
				}),
				Action: func(c *cli.Context) error {
					node, err := oneName(c, "node")
					if err != nil {
						return err
					}
					s, err := connect(c.Context, c, false)
					if err != nil {
						return err
					}
					return runPlaybook(c, s, "release node", "release-node", given(map[string]any{"node": node, "force": c.Bool("force")}))
				},
			},
		},
	}
}
