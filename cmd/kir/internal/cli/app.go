package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is kir's version, set at build time with -ldflags -X.
var Version = "dev"

// New returns kir's command-line application writing to out and errOut.
func New(out, errOut io.Writer) *cli.App {
	app := &cli.App{
		Name:      "kir",
		Usage:     "respond to a compromised Kubernetes cluster",
		Version:   Version,
		Writer:    out,
		ErrWriter: errOut,
		Description: "kir contains compromised pods and nodes and undoes exactly what it did.\n" +
			"Every response is a playbook run, recorded in a journal: kir runs list.\n" +
			"Flags may follow arguments, as in kubectl: kir contain pod web-7f9c -n shop.\n\n" + exitCodesHelp(),
		Commands: []*cli.Command{
			containCommand(),
			collectCommand(),
			releaseCommand(),
			playbookCommand(),
			runsCommand(),
			actionsCommand(),
			doctorCommand(),
			nodeCommand(),
			rbacCommand(),
			evidenceCommand(),
			rotateCommand(),
			serveCommand(),
			falcoCommand(),
		},
		// Errors are printed once, by Run, and mapped to exit codes there.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		// --set name=a,b hands the playbook a list; repeatable flags
		// are repeated, never comma-split.
		DisableSliceFlagSeparator: true,
	}
	setUsageHandler(app.Commands)
	return app
}

// onUsageError turns a flag error into one line and exit code 2, instead of
// a screenful of help.
func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err} }

func setUsageHandler(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		setUsageHandler(c.Subcommands)
	}
}

// Run runs kir with args (the program name first) and returns the exit
// code, printing any error as one line on errOut.
func Run(ctx context.Context, args []string, out, errOut io.Writer) int {
	app := New(out, errOut)
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	if code == ExitFailure && isUsage(err) {
		code = ExitUsage
	}
	fmt.Fprintf(errOut, "kir: %s\n", oneLine(err))
	return code
}

// isUsage recognises urfave/cli's own usage errors that bypass OnUsageError
// (missing flag values, bad flag values).
func isUsage(err error) bool {
	msg := err.Error()
	for _, sub := range []string{"flag provided but not defined", "flag needs an argument", "invalid value", "No help topic"} {
		if strings.Contains(msg, sub) {
			return true
		}
	}
	return false
}

// oneLine joins a multi-error's lines, so every failure is one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
