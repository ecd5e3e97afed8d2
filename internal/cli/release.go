package cli

import (
	"github.com/urfave/cli/v2"

	"kir.dev/kir/contain"
	"kir.dev/kir/internal/action"
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
				Flags: flagsOf(kubeFlags(), writeFlags(), []cli.Flag{
					namespaceFlag(), selectorFlag(),
					&cli.BoolFlag{Name: "reattach", Usage: "put back the labels --detach removed (its controller then re-adopts it and may delete a surplus replica)"},
					&cli.BoolFlag{Name: "delete", Usage: "delete the pod once released"},
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
					r := newRunner("release pod", s.env)
					res, err := r.run(c.Context, "release", "contain.release-pod", action.Encode(contain.ReleaseParams{
						Namespace: s.namespace, Name: name, Selector: c.String(flagSelector),
						Reattach: c.Bool("reattach"), Delete: c.Bool("delete"),
					}))
					if out, ok := res.Output.(contain.ReleaseOutput); ok && err == nil && len(out.Released) > 0 && len(out.Nodes) > 0 {
						r.run(c.Context, "release-node", "contain.release-node", action.Encode(contain.ReleaseNodeParams{
							Nodes: out.Nodes, ReleasedPods: out.Released,
						}))
					}
					return s.finish(c, r)
				},
			},
			{
				Name:      "node",
				Usage:     "remove kir's taint and uncordon the node if kir cordoned it",
				ArgsUsage: "NAME",
				Flags: flagsOf(kubeFlags(), writeFlags(), []cli.Flag{
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
					r := newRunner("release node", s.env)
					r.run(c.Context, "release-node", "contain.release-node", action.Encode(contain.ReleaseNodeParams{
						Nodes: []string{node}, Force: c.Bool("force"),
					}))
					return s.finish(c, r)
				},
			},
		},
	}
}
