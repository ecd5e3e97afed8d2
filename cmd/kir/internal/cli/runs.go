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
		Name:        "runs",
		Usage:       "the journal of playbook runs: list, show, resume; kir serve's held runs: list --held, approve, deny, pause, unpause",
		Subcommands: []*cli.Command{runsListCommand(), runsShowCommand(), runsResumeCommand(), runsApproveCommand(), runsDenyCommand(), runsPauseCommand(), runsUnpauseCommand()},
	}
}

// journalOptions are the flags of the commands that read the journal.
type journalOptions struct {
	state  stateOptions
	output outputOptions
}

func (o *journalOptions) flags() []cli.Flag { return []cli.Flag{o.state.flag(), o.output.flag()} }

func runsListCommand() *cli.Command {
	o := &journalOptions{}
	var held bool
	records := &recordOptions{}
	return &cli.Command{
		Name:  "list",
		Usage: "list recorded runs, newest first; --held: kir serve's runs that wait for a person, from the cluster's response records",
		Flags: flagsOf(o.flags(), records.flags(), []cli.Flag{
			&cli.BoolFlag{Name: "held", Usage: "list kir serve's held runs (response records in kir's namespace) instead of this machine's journal", Destination: &held},
		}),
		Action: func(c *cli.Context) error {
			if held {
				return listHeld(c, records)
			}
			eng, err := o.state.engine()
			if err != nil {
				return err
			}
			runs, err := eng.List()
			if err != nil {
				return err
			}
			return printRuns(c, o.output, runs)
		},
	}
}

func printRuns(c *cli.Context, out outputOptions, runs []*playbooks.Run) error {
	if out.structured() {
		if runs == nil {
			runs = []*playbooks.Run{}
		}
		return printStructured(c.App.Writer, out.format, runs)
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
}

func runsShowCommand() *cli.Command {
	o := &journalOptions{}
	return &cli.Command{
		Name:      "show",
		Usage:     "show a run: every step, its parameters, result and writes",
		ArgsUsage: "RUN",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			_, run, err := o.state.load(c, "RUN")
			if err != nil {
				return err
			}
			return printReport(c.App.Writer, o.output.format, reportOf("runs show", run))
		},
	}
}

// runsResumeOptions are kir runs resume's flags.
type runsResumeOptions struct {
	kube  kubeOptions
	state stateOptions
	write writeOptions // -o only: a run resumes as it started
	// approval decides on a held run's step that needs approval.
	approval approvalOptions
}

func runsResumeCommand() *cli.Command {
	o := &runsResumeOptions{}
	return &cli.Command{
		Name:      "resume",
		Usage:     "finish an interrupted, failed or held run: finished steps are not repeated, unfinished ones run",
		ArgsUsage: "RUN",
		Flags: flagsOf(o.kube.flags(), []cli.Flag{o.state.flag(), o.write.output.flag(),
			o.approval.flag("approve the run's steps that need approval now, as the person at this terminal; without it a terminal asks, and with none a held run stays held")}),
		Action: o.resume,
	}
}

func (o *runsResumeOptions) resume(c *cli.Context) error {
	eng, run, err := o.state.load(c, "RUN")
	if err != nil {
		return err
	}
	id := run.ID
	// A run whose actions need no Kubernetes permission (a secret's
	// rotation) resumes without a cluster.
	pending, err := eng.PendingActions(c.Context, id)
	if err != nil {
		return err
	}
	s, err := offline(c, &o.write, givenIncident)
	if needsCluster(eng.Actions, pending) {
		s, err = online(c, &o.kube, &o.write, givenIncident)
	}
	if err != nil {
		return err
	}
	eng.Approvals = o.approval.approvals(c, s)
	run, err = eng.Resume(c.Context, id, s.env)
	if errors.Is(err, playbooks.ErrDenied) {
		return deniedError{msg: fmt.Sprintf("run %s: %s: it cannot be resumed", id, run.Error)}
	}
	if errors.Is(err, playbooks.ErrFinished) {
		fmt.Fprintf(c.App.ErrWriter, "kir: run %s already succeeded; nothing to resume\n", id)
		return nil
	}
	if err != nil {
		return err
	}
	return s.report(c, "runs resume", run)
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

// load loads the run named by the command's one argument, what.
func (o *stateOptions) load(c *cli.Context, what string) (*playbooks.Engine, *playbooks.Run, error) {
	id, err := oneName(c, what)
	if err != nil {
		return nil, nil, err
	}
	eng, err := o.engine()
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
