package cli

import (
	"slices"

	"github.com/urfave/cli/v2"
)

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:        "release",
		Usage:       "undo exactly what kir contain did",
		Subcommands: []*cli.Command{releasePodCommand(), releaseNodeCommand()},
	}
}

// releasePodOptions are kir release pod's flags.
type releasePodOptions struct {
	kube     kubeOptions
	write    writeOptions
	playbook playbookOptions
	target   targetOptions
	reattach bool
	delete   bool
	evidence string
	key      string
}

func (o *releasePodOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.write.flags(), o.playbook.flags(), o.target.flags(), []cli.Flag{
		&cli.BoolFlag{Name: "reattach", Usage: "put back the labels --detach removed (its controller then re-adopts it and may delete a surplus replica)", Destination: &o.reattach},
		&cli.BoolFlag{Name: "delete", Usage: "delete the pod once released", Destination: &o.delete},
		&cli.StringFlag{Name: "evidence", Usage: "the containment's sealed evidence bundle (a directory): the release is appended, signed, to its custody log", Destination: &o.evidence},
		signingKeyFlag(&o.key, "private key the bundle was sealed with"),
		// Where release marks the pod as releasing, for kir serve's tamper guard.
		o.playbook.guard.namespaceFlag(),
	})
}

// params are the release-pod playbook's parameters.
func (o *releasePodOptions) params(namespace, name string) []param {
	return slices.Concat(podParams(namespace, name, o.target.selector), []param{
		{"reattach", "reattach", o.reattach},
		{"delete", "delete", o.delete},
		{"evidence", "evidence", absPath(o.evidence)},
		{flagKey, "key", absPath(o.key)},
	})
}

func releasePodCommand() *cli.Command {
	o := &releasePodOptions{}
	return &cli.Command{
		Name:      "pod",
		Usage:     "delete a pod's quarantine policy, restore its labels and annotations, and release its node once no contained pod remains there",
		ArgsUsage: "NAME | -l SELECTOR",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			name, err := oneNameOrSelector(c, o.target.selector)
			if err != nil {
				return err
			}
			s, err := online(c, &o.kube, &o.write, givenIncident)
			if err != nil {
				return err
			}
			return o.playbook.run(c, s, "release pod", "release-pod", o.params(s.namespace(o.target.namespace), name))
		},
	}
}

// releaseNodeOptions are kir release node's flags.
type releaseNodeOptions struct {
	kube     kubeOptions
	write    writeOptions
	playbook playbookOptions
	force    bool
}

func (o *releaseNodeOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.write.flags(), o.playbook.flags(), []cli.Flag{
		&cli.BoolFlag{Name: "force", Usage: "release the node even while contained pods remain on it", Destination: &o.force},
	})
}

func releaseNodeCommand() *cli.Command {
	o := &releaseNodeOptions{}
	return &cli.Command{
		Name:      "node",
		Usage:     "remove kir's taint and uncordon the node if kir cordoned it",
		ArgsUsage: "NAME",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			node, err := oneName(c, "node")
			if err != nil {
				return err
			}
			s, err := online(c, &o.kube, &o.write, givenIncident)
			if err != nil {
				return err
			}
			return o.playbook.run(c, s, "release node", "release-node", []param{arg("node", node), {"force", "force", o.force}})
		},
	}
}
