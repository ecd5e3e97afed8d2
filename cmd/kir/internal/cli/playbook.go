package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/playbooks"
)

func playbookCommand() *cli.Command {
	return &cli.Command{
		Name:  "playbook",
		Usage: "list, show, validate and run playbooks",
		Subcommands: []*cli.Command{
			playbookListCommand(), playbookShowCommand(), playbookValidateCommand(), playbookRunCommand(),
		},
	}
}

// playbookListOptions are kir playbook list's flags.
type playbookListOptions struct {
	playbook playbookOptions
	output   outputOptions
}

func playbookListCommand() *cli.Command {
	o := &playbookListOptions{}
	return &cli.Command{
		Name:  "list",
		Usage: "list the playbooks kir can run and where each comes from",
		Flags: append(o.playbook.flags(), o.output.flag()),
		Action: func(c *cli.Context) error {
			lib, err := o.playbook.library()
			if err != nil {
				return err
			}
			return printPlaybooks(c, o.output, lib)
		},
	}
}

func playbookShowCommand() *cli.Command {
	o := &playbookOptions{}
	return &cli.Command{
		Name:      "show",
		Usage:     "print a playbook as it will run",
		ArgsUsage: "NAME",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			name, err := oneName(c, "playbook")
			if err != nil {
				return err
			}
			e, err := o.find(name)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "# source: %s\n", e.Source)
			for _, o := range e.Overrides {
				fmt.Fprintf(c.App.Writer, "# overrides: %s\n", o)
			}
			_, err = c.App.Writer.Write(e.Data)
			return err
		},
	}
}

func playbookValidateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check playbook files strictly; every problem is reported as file:line:col",
		ArgsUsage: "FILE...",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError{errors.New("give one or more playbook FILEs")}
			}
			return validatePlaybooks(c, c.Args().Slice())
		},
	}
}

// validatePlaybooks loads each file, prints "ok" or every problem, and
// fails when there is one.
func validatePlaybooks(c *cli.Context, files []string) error {
	var problems []playbooks.Problem
	for _, f := range files {
		pb, err := playbooks.LoadFile(f, registry())
		var le *playbooks.LoadError
		switch {
		case errors.As(err, &le):
			problems = append(problems, le.Problems...)
		case err != nil:
			problems = append(problems, playbooks.Problem{Pos: playbooks.Pos{File: f}, Msg: err.Error()})
		default:
			fmt.Fprintf(c.App.Writer, "%s: ok: playbook %s, %d steps\n", f, pb.Name, len(pb.Steps))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	for _, p := range problems {
		fmt.Fprintln(c.App.ErrWriter, p)
	}
	return usageError{fmt.Errorf("%d problem(s) found", len(problems))}
}

// playbookRunOptions are kir playbook run's flags.
type playbookRunOptions struct {
	kube     kubeOptions
	write    writeOptions
	playbook playbookOptions
	sets     cli.StringSlice
}

func (o *playbookRunOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.write.flags(), o.playbook.flags(), o.playbook.guard.flags(flagForce), []cli.Flag{
		&cli.StringSliceFlag{Name: "set", Usage: "a playbook parameter, name=value ([]string values comma-separated; repeatable)", Destination: &o.sets},
		o.playbook.approval.flag("approve the playbook's steps that need approval (approval: required) now, as the person at this terminal; without it a terminal asks, and with none the run is held before them"),
	})
}

func playbookRunCommand() *cli.Command {
	o := &playbookRunOptions{}
	return &cli.Command{
		Name:      "run",
		Usage:     "run a playbook: --set name=value for each parameter; --dry-run=client prints the plan",
		ArgsUsage: "NAME",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			name, err := oneName(c, "playbook")
			if err != nil {
				return err
			}
			e, params, err := o.params(name)
			if err != nil {
				return err
			}
			s, err := online(c, &o.kube, &o.write, newIncident)
			if err != nil {
				return err
			}
			run, err := o.playbook.startWith(c, s, e, params)
			if err != nil {
				return err
			}
			return s.report(c, "playbook run "+name, run)
		},
	}
}

// params parses --set against the playbook's declarations, and checks
// them before kir connects: bad input is found first.
func (o *playbookRunOptions) params(name string) (*playbooks.Entry, map[string]any, error) {
	e, err := o.playbook.find(name)
	if err != nil {
		return nil, nil, err
	}
	params, err := playbooks.ParseSets(e.Playbook, o.sets.Value())
	if err != nil {
		return nil, nil, usageError{err}
	}
	if _, err := playbooks.Bind(e.Playbook, params); err != nil {
		return nil, nil, usageError{err}
	}
	return e, params, nil
}

// PlaybookInfo is one line of `kir playbook list -o json`.
type PlaybookInfo struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`
	Overrides   []string `json:"overrides,omitempty"`
	Description string   `json:"description"`
	Parameters  []string `json:"parameters"`
	Steps       []string `json:"steps"`
}

func printPlaybooks(c *cli.Context, out outputOptions, lib *playbooks.Library) error {
	var infos []PlaybookInfo
	for _, e := range lib.List() {
		info := PlaybookInfo{Name: e.Name, Source: e.Source, Overrides: e.Overrides, Description: e.Description, Parameters: []string{}, Steps: []string{}}
		for _, p := range e.Parameters {
			info.Parameters = append(info.Parameters, p.Name)
		}
		for _, s := range e.Steps {
			info.Steps = append(info.Steps, s.Name+" ("+s.Action+")")
		}
		infos = append(infos, info)
	}
	if out.structured() {
		return printStructured(c.App.Writer, out.format, infos)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tSTEPS")
	for _, i := range infos {
		src := i.Source
		if len(i.Overrides) > 0 {
			src += " (overrides " + strings.Join(i.Overrides, ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, src, strings.Join(i.Steps, ", "))
	}
	return tw.Flush()
}
