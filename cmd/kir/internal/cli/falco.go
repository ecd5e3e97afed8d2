package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/action"
	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/serve"
)

func falcoCommand() *cli.Command {
	return &cli.Command{
		Name:  "falco",
		Usage: "work with Falco alerts by hand",
		Subcommands: []*cli.Command{
			{
				Name: "replay",
				Usage: "run what a saved Falco alert (JSON, as Falco or Falcosidekick posts it) would trigger in kir serve: " +
					"the same routing, the same playbooks; --dry-run=client shows the plan",
				ArgsUsage: "FILE.json",
				Flags: flagsOf(kubeFlags(), writeFlags(), playbookFlags(), []cli.Flag{
					&cli.StringFlag{Name: flagConfig, Usage: "routing rules, as kir serve --config (default: the built-in routing)", EnvVars: []string{"KIR_SERVE_CONFIG"}},
					&cli.StringFlag{Name: flagKey, Usage: "private key that signs the evidence (for playbooks that take a key)", EnvVars: []string{"KIR_SIGNING_KEY"}},
				}),
				Action: falcoReplay,
			},
		},
	}
}

func falcoReplay(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError{errors.New("give exactly one alert FILE.json")}
	}
	path := c.Args().First()
	raw, err := os.ReadFile(path)
	if err != nil {
		return usageError{err}
	}
	alert, err := falco.Decode(raw)
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", path, err)}
	}
	routing, lib, err := loadRouting(c)
	if err != nil {
		return err
	}
	matches, skipped := routing.Route(alert)
	for _, sk := range skipped {
		fmt.Fprintf(c.App.ErrWriter, "kir: routing rule %s does not apply: %s\n", sk.Rule, sk.Reason)
	}
	if len(matches) == 0 {
		fmt.Fprintf(c.App.Writer, "no routing rule of %s acts on this alert (%s, priority %s): kir serve would record it and run nothing\n",
			routing.Source, alert.Rule, alert.Priority)
		return nil
	}
	s, err := connect(c.Context, c, true)
	if err != nil {
		return err
	}
	eng, err := newEngine(c)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range matches {
		e, _ := lib.Get(m.Playbook) // checkRoutes found every one
		env := s.env
		if m.DryRun && env.DryRun.Persists() {
			env.DryRun = action.DryRunClient
			fmt.Fprintf(c.App.ErrWriter, "kir: routing rule %s is dryRun: planning only\n", m.Rule)
		}
		params := serve.WithKey(e.Playbook, m.Params, absPath(c.String(flagKey)))
		run, err := eng.Start(c.Context, playbooks.Request{Playbook: e.Playbook, Params: params, Alert: alert.Vars(), Env: env})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.report(c, "falco replay ("+m.Rule+")", run); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
