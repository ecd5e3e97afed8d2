package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/playbooks"
)

func playbookCommand() *cli.Command {
	return &cli.Command{
		Name:  "playbook",
		Usage: "list, show, validate and run playbooks",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the playbooks kir can run and where each comes from",
				Flags: flagsOf(playbookFlags(), []cli.Flag{outputFlag()}),
				Action: func(c *cli.Context) error {
					lib, err := library(c)
					if err != nil {
						return err
					}
					return printPlaybooks(c, lib)
				},
			},
			{
				Name:      "show",
				Usage:     "print a playbook as it will run",
				ArgsUsage: "NAME",
				Flags:     playbookFlags(),
				Action: func(c *cli.Context) error {
					name, err := oneName(c, "playbook")
					if err != nil {
						return err
					}
					e, err := findPlaybook(c, name)
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
			},
			{
				Name:      "validate",
				Usage:     "check playbook files strictly; every problem is reported as file:line:col",
				ArgsUsage: "FILE...",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usageError{errors.New("give one or more playbook FILEs")}
					}
					var problems []playbooks.Problem
					for _, f := range c.Args().Slice() {
						pb, err := playbooks.LoadFile(f, catalog.Registry())
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
				},
			},
			{
				Name:      "run",
				Usage:     "run a playbook: --set name=value for each parameter; --dry-run=client prints the plan",
				ArgsUsage: "NAME",
				Flags: flagsOf(kubeFlags(), writeFlags(), playbookFlags(), []cli.Flag{
					&cli.StringSliceFlag{Name: "set", Usage: "a playbook parameter, name=value ([]string values comma-separated; repeatable)"},
				}),
				Action: func(c *cli.Context) error {
					name, err := oneName(c, "playbook")
					if err != nil {
						return err
					}
					e, err := findPlaybook(c, name)
					if err != nil {
						return err
					}
					params, err := playbooks.ParseSets(e.Playbook, c.StringSlice("set"))
					if err != nil {
						return usageError{err}
					}
					if _, err := playbooks.Bind(e.Playbook, params); err != nil {
						return usageError{err} // before connecting: bad input is found first
					}
					s, err := connect(c.Context, c, true)
					if err != nil {
						return err
					}
					return runPlaybook(c, s, "playbook run "+name, name, params)
				},
			},
		},
	}
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

func printPlaybooks(c *cli.Context, lib *playbooks.Library) error {
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
	format := c.String(flagOutput)
	if format == "json" || format == "yaml" {
		return printStructured(c.App.Writer, format, infos)
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
