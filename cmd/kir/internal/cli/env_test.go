package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Every variable a flag reads is in the environment table, which the
// README's table is generated from.
func TestFlagsReadListedVariables(t *testing.T) {
	t.Parallel()
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				ev, ok := f.(interface{ GetEnvVars() []string })
				if !ok {
					continue
				}
				for _, name := range ev.GetEnvVars() {
					if !slices.ContainsFunc(environment, func(v EnvVar) bool { return v.Name == name }) {
						t.Errorf("%s --%s reads %s, which the environment table (env.go) does not list", path+c.Name, f.Names()[0], name)
					}
				}
			}
			walk(path+c.Name+" ", c.Subcommands)
		}
	}
	walk("kir ", New(nil, nil).Commands)
}

// The table lists each variable once, and says what each is.
func TestEnvironmentTable(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, v := range environment {
		if seen[v.Name] {
			t.Errorf("%s is listed twice", v.Name)
		}
		seen[v.Name] = true
		if v.Meaning == "" || strings.ToUpper(v.Name) != v.Name {
			t.Errorf("%+v: want an upper-case name and a meaning", v)
		}
	}
}

// Each exit code has one row, in order, with a name of its own; --help
// lists them all.
func TestExitCodeTable(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for i, e := range exitCodes {
		if e.Code != i {
			t.Errorf("row %d is code %d: want the codes in order, none missing", i, e.Code)
		}
		if names[e.Name] || e.Name == "" || e.Meaning == "" {
			t.Errorf("code %d: name %q (used before: %v), meaning %q", e.Code, e.Name, names[e.Name], e.Meaning)
		}
		names[e.Name] = true
	}
	help := New(nil, nil).Description
	for _, e := range exitCodes {
		if !strings.Contains(help, strings.ReplaceAll(e.Meaning, "`", "")) {
			t.Errorf("--help does not list code %d", e.Code)
		}
	}
}
