package cli

import (
	"errors"

	"github.com/urfave/cli/v2"
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
				Flags: flagsOf(kubeFlags(), writeFlags(), playbookFlags(), evidenceFlags(), []cli.Flag{
					namespaceFlag(), selectorFlag(),
					&cli.BoolFlag{Name: flagNoEvidence, Usage: "collect no evidence (by default the pod is recorded before anything changes, the rest collected once it is isolated)"},
					&cli.BoolFlag{Name: "detach", Usage: "remove the labels its controller and Services select on: a clean replacement starts, traffic stops, the pod stays alive"},
					&cli.BoolFlag{Name: "allow-dns", Usage: "allow egress to the cluster DNS"},
					&cli.StringSliceFlag{Name: "allow-egress-cidr", Usage: "allow egress to this CIDR (repeatable)"},
					&cli.BoolFlag{Name: "no-cordon", Usage: "leave the pod's node schedulable and untainted"},
					&cli.BoolFlag{Name: "rotate-secrets", Usage: "once isolated, rotate what the pod could read (kir rotate plan pod): its Vault and Secrets Manager secrets, and its ServiceAccount's tokens, which cannot be rolled back; needs the kir-rotate role"},
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
					params := evidenceParams(c, map[string]any{
						"namespace": s.namespace, "name": name, "selector": c.String(flagSelector),
						"detach": c.Bool("detach"), "allowDNS": c.Bool("allow-dns"), "allowEgressCIDRs": c.StringSlice("allow-egress-cidr"),
						"rotateSecrets": c.Bool("rotate-secrets"),
					})
					if c.Bool("no-cordon") {
						params["cordon"] = false
					}
					if c.Bool(flagNoEvidence) {
						params["evidence"] = false
					}
					return runPlaybook(c, s, "contain pod", "contain-pod", given(params))
				},
			},
			{
				Name:      "node",
				Usage:     "cordon and taint a node, and with --drain evict its other pods",
				ArgsUsage: "NAME",
				Flags: flagsOf(kubeFlags(), writeFlags(), playbookFlags(), []cli.Flag{
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
					params := given(map[string]any{"node": node, "drain": c.Bool("drain"), "force": c.Bool("force")})
					if c.IsSet("drain-timeout") {
						params["drainTimeout"] = c.Duration("drain-timeout").String()
					}
					return runPlaybook(c, s, "contain node", "contain-node", params)
				},
			},
		},
	}
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

// given drops the parameters a command's flags leave at their zero value,
// so that the playbook's defaults apply and a user's playbook overriding a
// built-in one need only declare the parameters its users set. A parameter
// whose default is true (cordon, evidence, images) is set by a --no-…
// flag, as false: the caller adds it only when that flag is given.
func given(params map[string]any) map[string]any {
	for k, v := range params {
		switch v := v.(type) {
		case string:
			if v == "" {
				delete(params, k)
			}
		case bool:
			if !v && !defaultTrue[k] {
				delete(params, k)
			}
		case []string:
			if len(v) == 0 {
				delete(params, k)
			}
		case int:
			if v == 0 {
				delete(params, k)
			}
		}
	}
	return params
}

// defaultTrue are the built-in playbooks' parameters that default to true.
var defaultTrue = map[string]bool{"cordon": true, "evidence": true, "images": true, "restart": true}
