package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Interspersed flags: urfave/cli v2 stops parsing flags at the first
// positional argument, but kubectl habits put them after names
// (`kir contain pod web-7f9c -n shop`). Rather than switch libraries, kir
// moves a leaf command's flags ahead of its arguments before parsing; this
// is done once here for every command. "--" still ends the flags.

// reorderArgs returns args (the program name first) with the flags of the
// command they invoke moved ahead of its positional arguments.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds, flags := app.Commands, app.Flags
	i, leaf := 1, false
	// Walk down the command path; flags before a subcommand stay where they are.
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
			i++
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		out = append(out, a)
		i++
		cmds, flags = c.Subcommands, c.Flags
		if len(c.Subcommands) == 0 {
			leaf = true
			break
		}
	}
	if !leaf {
		return append(out, args[i:]...)
	}
	var moved, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			moved = append(moved, a)
			if takesValue(flags, a) && i+1 < len(args) {
				moved = append(moved, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, moved...)
	return append(out, positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag token (e.g. "-n", "--output") names a
// flag that takes its value from the next argument.
func takesValue(flags []cli.Flag, token string) bool {
	name := strings.TrimLeft(token, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if bf, ok := f.(*cli.BoolFlag); ok && bf != nil {
				return false
			}
			return true
		}
	}
	return false // unknown flags: let the parser report them
}
