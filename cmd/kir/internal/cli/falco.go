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
		Name:        "falco",
		Usage:       "work with Falco alerts by hand",
		Subcommands: []*cli.Command{falcoReplayCommand()},
	}
}

// falcoReplayOptions are kir falco replay's flags.
type falcoReplayOptions struct {
	kube     kubeOptions
	write    writeOptions
	playbook playbookOptions
	config   string
	key      string
}

func (o *falcoReplayOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.write.flags(), o.playbook.flags(), []cli.Flag{
		o.playbook.guard.namespaceFlag(),
		&cli.StringFlag{Name: flagConfig, Usage: "routing rules, as kir serve --config (default: the built-in routing)", EnvVars: envVars("KIR_SERVE_CONFIG"), Destination: &o.config},
		signingKeyFlag(&o.key, "private key that signs the evidence (for playbooks that take a key)"),
	})
}

func falcoReplayCommand() *cli.Command {
	o := &falcoReplayOptions{}
	return &cli.Command{
		Name: "replay",
		Usage: "run what a saved Falco alert (JSON, as Falco or Falcosidekick posts it) would trigger in kir serve: " +
			"the same routing, the same playbooks; --dry-run=client shows the plan",
		ArgsUsage: "FILE.json",
		Flags:     o.flags(),
		Action:    o.replay,
	}
}

func (o *falcoReplayOptions) replay(c *cli.Context) error {
	alert, err := readAlert(c)
	if err != nil {
		return err
	}
	routing, lib, err := loadRouting(o.config, &o.playbook)
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
	s, err := online(c, &o.kube, &o.write, newIncident)
	if err != nil {
		return err
	}
	eng, err := o.playbook.state.engine()
	if err != nil {
		return err
	}
	eng.Guard = o.playbook.guard.guard().Check // as kir serve's: never forced
	var errs []error
	for _, m := range matches {
		errs = append(errs, o.runMatch(c, s, eng, lib, alert, m))
	}
	return errors.Join(errs...)
}

// readAlert reads the one alert file argument.
func readAlert(c *cli.Context) (*falco.Alert, error) {
	if c.NArg() != 1 {
		return nil, usageError{errors.New("give exactly one alert FILE.json")}
	}
	path := c.Args().First()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{err}
	}
	alert, err := falco.Decode(raw)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", path, err)}
	}
	return alert, nil
}

// runMatch runs the playbook one routing rule chose, as kir serve would.
func (o *falcoReplayOptions) runMatch(c *cli.Context, s *session, eng *playbooks.Engine, lib *playbooks.Library, alert *falco.Alert, m falco.Match) error {
	e, _ := lib.Get(m.Playbook) // loadRouting checked every one
	env := s.env
	env.KirNamespace = o.playbook.guard.namespace
	if m.DryRun && env.DryRun.Persists() {
		env.DryRun = action.DryRunClient
		fmt.Fprintf(c.App.ErrWriter, "kir: routing rule %s is dryRun: planning only\n", m.Rule)
	}
	params := serve.WithKey(e.Playbook, m.Params, absPath(o.key))
	run, err := eng.Start(c.Context, playbooks.Request{Playbook: e.Playbook, Params: params, Alert: alert.Vars(), Env: env})
	if err != nil {
		return err
	}
	return s.report(c, "falco replay ("+m.Rule+")", run)
}
