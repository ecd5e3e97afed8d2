package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/action"
)

func actionsCommand() *cli.Command {
	o := &outputOptions{}
	return &cli.Command{
		Name:  "actions",
		Usage: "list every action playbooks can use, with its parameters and the RBAC it needs",
		Flags: []cli.Flag{o.flag()},
		Action: func(c *cli.Context) error {
			reg := registry()
			var specs []action.Spec
			for _, name := range reg.Names() {
				a, _ := reg.Get(name)
				specs = append(specs, a.Spec())
			}
			if o.structured() {
				return printStructured(c.App.Writer, o.format, specs)
			}
			return printSpecs(c.App.Writer, specs)
		},
	}
}

// printSpecs writes the actions for people.
func printSpecs(w io.Writer, specs []action.Spec) error {
	p := &textPrinter{w: w}
	for i, s := range specs {
		if i > 0 {
			p.line("")
		}
		p.line("%s", s.Name)
		p.line("  %s", s.Summary)
		for _, param := range s.Params {
			req := ""
			if param.Required {
				req = ", required"
			}
			p.line("  %s (%s%s): %s", param.Name, param.Type, req, param.Description)
		}
		for _, r := range s.Rules {
			p.line("  needs %s %s", strings.Join(r.Verbs, ","), resources(r.APIGroups, r.Resources))
		}
	}
	return p.err
}

func resources(groups, res []string) string {
	var out []string
	for _, g := range groups {
		for _, r := range res {
			if g == "" {
				out = append(out, r)
			} else {
				out = append(out, fmt.Sprintf("%s.%s", r, g))
			}
		}
	}
	return strings.Join(out, " ")
}
