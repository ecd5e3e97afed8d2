package cli

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/contain"
	"kir.dev/kir/internal/action"
)

func containCommand() *cli.Command {
	return &cli.Command{
		Name:  "contain",
		Usage: "cut a compromised pod or node off, keeping it for forensics",
		Subcommands: []*cli.Command{
			{
				Name:      "pod",
				Usage:     "isolate a pod with a quarantine NetworkPolicy that selects only it, and cordon and taint its node",
				ArgsUsage: "NAME | -l SELECTOR",
				Flags: flagsOf(kubeFlags(), writeFlags(), []cli.Flag{
					namespaceFlag(), selectorFlag(),
					&cli.BoolFlag{Name: "detach", Usage: "remove the labels its controller and Services select on: a clean replacement starts, traffic stops, the pod stays alive"},
					&cli.BoolFlag{Name: "allow-dns", Usage: "allow egress to the cluster DNS"},
					&cli.StringSliceFlag{Name: "allow-egress-cidr", Usage: "allow egress to this CIDR (repeatable)"},
					&cli.BoolFlag{Name: "no-cordon", Usage: "leave the pod's node schedulable and untainted"},
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
					p := contain.IsolateParams{
						Namespace: s.namespace, Name: name, Selector: c.String(flagSelector),
						Detach: c.Bool("detach"), AllowDNS: c.Bool("allow-dns"), AllowEgressCIDRs: c.StringSlice("allow-egress-cidr"),
					}
					return s.finish(c, containPod(c.Context, s, p, !c.Bool("no-cordon")))
				},
			},
			{
				Name:      "node",
				Usage:     "cordon and taint a node, and with --drain evict its other pods",
				ArgsUsage: "NAME",
				Flags: flagsOf(kubeFlags(), writeFlags(), []cli.Flag{
					&cli.BoolFlag{Name: "drain", Usage: "evict the node's pods through the Eviction API (honours PodDisruptionBudgets; never evicts a quarantined pod)"},
					&cli.BoolFlag{Name: "force", Usage: "with --drain, also evict pods no controller manages"},
					&cli.DurationFlag{Name: "drain-timeout", Usage: "with --drain, how long to wait for evictions (default 5m)"},
				}),
				Action: func(c *cli.Context) error {
					node, err := oneName(c, "node")
					if err != nil {
						return err
					}
					s, err := connect(c.Context, c, true)
					if err != nil {
						return err
					}
					r := newRunner("contain node", s.env)
					if _, err := r.run(c.Context, "cordon", "contain.cordon-node", action.Encode(contain.CordonParams{Nodes: []string{node}})); err == nil && c.Bool("drain") {
						r.run(c.Context, "drain", "contain.drain-node", action.Encode(contain.DrainParams{
							Node: node, Force: c.Bool("force"), Timeout: action.Duration(c.Duration("drain-timeout")),
						}))
					}
					return s.finish(c, r)
				},
			},
		},
	}
}

// containPod isolates, then cordons the nodes of the isolated pods.
func containPod(ctx context.Context, s *session, p contain.IsolateParams, cordon bool) *runner {
	r := newRunner("contain pod", s.env)
	res, _ := r.run(ctx, "isolate", "contain.isolate-pod", action.Encode(p))
	out, ok := res.Output.(contain.IsolateOutput)
	switch {
	case !ok:
		return r // nothing was isolated: the error says why
	case !cordon:
		r.skip("cordon", "contain.cordon-node", "--no-cordon")
	case len(out.Nodes) == 0:
		r.skip("cordon", "contain.cordon-node", "the pods are not scheduled on any node")
	default:
		// Cordon even when some pods failed: the isolated ones' nodes still
		// need it, and a rerun finishes the rest.
		r.run(ctx, "cordon", "contain.cordon-node", action.Encode(contain.CordonParams{Nodes: out.Nodes}))
	}
	return r
}

// oneNameOrSelector returns the pod name argument, or "" with -l.
func oneNameOrSelector(c *cli.Context) (string, error) {
	switch {
	case c.NArg() == 0 && c.String(flagSelector) == "":
		return "", usageError{errors.New("give a pod NAME or -l SELECTOR")}
	case c.NArg() > 0 && c.String(flagSelector) != "":
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

func flagsOf(sets ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, s := range sets {
		out = append(out, s...)
	}
	return out
}

// finish prints the report and returns the command's error.
func (s *session) finish(c *cli.Context, r *runner) error {
	err := r.finish()
	if perr := r.print(c.App.Writer, s.format); perr != nil && err == nil {
		err = perr
	}
	return err
}
