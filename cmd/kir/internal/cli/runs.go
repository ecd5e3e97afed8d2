package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/journal"
	"kir.dev/kir/playbooks"
)

func runsCommand() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "the journal of playbook runs: list, show, resume",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list recorded runs, newest first",
				Flags: []cli.Flag{stateDirFlag(), outputFlag()},
				Action: func(c *cli.Context) error {
					eng, err := newEngine(c)
					if err != nil {
						return err
					}
					runs, err := eng.List()
					if err != nil {
						return err
					}
					if f := c.String(flagOutput); f == "json" || f == "yaml" {
						if runs == nil {
							runs = []*playbooks.Run{}
						}
						return printStructured(c.App.Writer, f, runs)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "RUN\tPLAYBOOK\tSTATUS\tSTARTED\tINCIDENT")
					for _, r := range runs {
						started := ""
						if !r.Started.IsZero() {
							started = r.Started.UTC().Format(time.RFC3339)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, r.Status, started, r.Incident)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "show a run: every step, its parameters, result and writes",
				ArgsUsage: "RUN",
				Flags:     []cli.Flag{stateDirFlag(), outputFlag()},
				Action: func(c *cli.Context) error {
					_, run, err := loadRun(c, "RUN")
					if err != nil {
						return err
					}
					return printReport(c.App.Writer, c.String(flagOutput), reportOf("runs show", run))
				},
			},
			{
				Name:      "resume",
				Usage:     "finish an interrupted or failed run: finished steps are not repeated, unfinished ones run",
				ArgsUsage: "RUN",
				Flags:     flagsOf(kubeFlags(), []cli.Flag{stateDirFlag(), outputFlag()}),
				Action: func(c *cli.Context) error {
					eng, run, err := loadRun(c, "RUN")
					if err != nil {
						return err
					}
					id := run.ID
					// A run whose actions need no Kubernetes permission
					// (a secret's rotation) resumes without a cluster.
					pending, err := eng.PendingActions(c.Context, id)
					if err != nil {
						return err
					}
					s, err := offline(c, false)
					if needsCluster(eng.Actions, pending) {
						s, err = connect(c.Context, c, false)
					}
					if err != nil {
						return err
					}
					run, err = eng.Resume(c.Context, id, s.env)
					if errors.Is(err, playbooks.ErrFinished) {
						fmt.Fprintf(c.App.ErrWriter, "kir: run %s already succeeded; nothing to resume\n", id)
						return nil
					}
					if err != nil {
						return err
					}
					return s.report(c, "runs resume", run)
				},
			},
		},
	}
}

// needsCluster reports whether any of the actions declares Kubernetes
// permissions.
func needsCluster(actions action.Registry, pending []string) bool {
	for _, name := range pending {
		a, ok := actions.Get(name)
		if !ok || len(a.Spec().Rules) > 0 {
			return true
		}
	}
	return false
}

// ErrRunNotFound is returned for a run id the journal does not hold.
var ErrRunNotFound = errors.New("no such run")

// loadRun loads the run named by the command's one argument, what.
func loadRun(c *cli.Context, what string) (*playbooks.Engine, *playbooks.Run, error) {
	id, err := oneName(c, what)
	if err != nil {
		return nil, nil, err
	}
	eng, err := newEngine(c)
	if err != nil {
		return nil, nil, err
	}
	run, err := eng.Load(id)
	if err != nil {
		return nil, nil, notFoundRun(id, err)
	}
	return eng, run, nil
}

func notFoundRun(id string, err error) error {
	switch {
	case errors.Is(err, journal.ErrNotFound):
		return fmt.Errorf("run %s: %w", id, ErrRunNotFound)
	case errors.Is(err, journal.ErrInvalidID):
		return usageError{fmt.Errorf("%q is not a run id (kir runs list shows them)", id)}
	}
	return err
}
