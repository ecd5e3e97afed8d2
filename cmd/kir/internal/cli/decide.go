package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/budget"
	"kir.dev/kir/record"
)

// What people decide on kir serve's held runs, from any machine with a
// kubeconfig: the decision is written on the run's response record
// (package record), in the name the API server authenticated, and a kir
// serve replica acts on it.

// recordOptions are the flags of the commands that read or write the
// response records.
type recordOptions struct {
	kube  kubeOptions
	guard guardOptions
}

func (o *recordOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), []cli.Flag{o.guard.namespaceFlag()})
}

// store connects and returns the records of kir's namespace, and who the
// API server says the user is.
func (o *recordOptions) store(c *cli.Context) (*record.Store, *session, error) {
	s, err := online(c, &o.kube, &writeOptions{}, givenIncident)
	if err != nil {
		return nil, nil, err
	}
	return record.NewStore(s.env.Kube, o.guard.namespace), s, nil
}

// decideOptions are kir runs approve's and deny's flags.
type decideOptions struct {
	recordOptions
	incident, step, reason string
}

func runsApproveCommand() *cli.Command { return decideCommand(record.Approve) }
func runsDenyCommand() *cli.Command    { return decideCommand(record.Deny) }

func decideCommand(decision string) *cli.Command {
	o := &decideOptions{}
	usage := "approve a held run of kir serve (over the budget, paused, or at a step that needs approval): a replica then runs it"
	if decision == record.Deny {
		usage = "deny a held run of kir serve: it ends denied; what ran before it stands (the pod stays isolated)"
	}
	return &cli.Command{
		Name:      decision,
		Usage:     usage,
		ArgsUsage: "RECORD|RUN | --incident ID",
		Flags: flagsOf(o.recordOptions.flags(), []cli.Flag{
			&cli.StringFlag{Name: "incident", Usage: "every held run of this incident", Destination: &o.incident},
			&cli.StringFlag{Name: "step", Usage: "the step the decision is about (default: the run as a whole)", Destination: &o.step},
			&cli.StringFlag{Name: "reason", Usage: "why, for the record and the evidence", Destination: &o.reason, Required: decision == record.Deny},
		}),
		Action: func(c *cli.Context) error { return o.decide(c, decision) },
	}
}

func (o *decideOptions) decide(c *cli.Context, decision string) error {
	if (c.NArg() == 1) == (o.incident != "") || c.NArg() > 1 {
		return usageError{errors.New("give one held record or run, or --incident ID")}
	}
	store, s, err := o.store(c)
	if err != nil {
		return err
	}
	held, err := heldRecords(c, store)
	if err != nil {
		return err
	}
	var chosen []record.Response
	for _, r := range held {
		if r.Name == c.Args().First() || (r.Status.Run != "" && r.Status.Run == c.Args().First()) || (o.incident != "" && r.Status.Incident == o.incident) {
			chosen = append(chosen, r)
		}
	}
	if len(chosen) == 0 {
		return usageError{fmt.Errorf("no held run %s in %s (kir runs list --held lists them)", strings.TrimSpace(c.Args().First()+" "+o.incident), store.Namespace())}
	}
	for _, r := range chosen {
		a := record.Approval{Step: o.step, Decision: decision, By: s.env.Actor, At: metav1.NewTime(time.Now().UTC()), Reason: o.reason}
		if _, err := store.Decide(c.Context, r.Name, a); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s: %sd by %s; a kir serve replica acts on it within seconds\n", r.Name, decision, s.env.Actor)
	}
	return nil
}

// heldRecords are the records whose runs wait for a person.
func heldRecords(c *cli.Context, store *record.Store) ([]record.Response, error) {
	all, err := store.List(c.Context, "")
	if err != nil {
		return nil, err
	}
	var held []record.Response
	for _, r := range all {
		if r.Status.Phase == record.Held && len(r.Spec.Approvals) <= r.Status.Decided {
			held = append(held, r)
		}
	}
	return held, nil
}

// listHeld prints the held runs: kir runs list --held.
func listHeld(c *cli.Context, o *recordOptions) error {
	store, _, err := o.store(c)
	if err != nil {
		return err
	}
	held, err := heldRecords(c, store)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RECORD\tPLAYBOOK\tTARGET\tRULE\tSINCE\tWHY")
	for _, r := range held {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Spec.Playbook, r.Spec.Target, r.Spec.AlertRule, r.Spec.Received.UTC().Format(time.RFC3339), r.Status.Message)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(held) > 0 {
		fmt.Fprintf(c.App.Writer, "approve: kir runs approve RECORD --kir-namespace %s; deny: kir runs deny RECORD --reason WHY\n", store.Namespace())
	}
	return nil
}

// pauseOptions are kir runs pause's and unpause's flags.
type pauseOptions struct{ recordOptions }

func runsPauseCommand() *cli.Command   { return pauseCommand(true) }
func runsUnpauseCommand() *cli.Command { return pauseCommand(false) }

func pauseCommand(pause bool) *cli.Command {
	o := &pauseOptions{}
	name, usage := "unpause", "let kir serve run new alerts again (runs held while paused wait for kir runs approve)"
	if pause {
		name, usage = "pause", "hold every new run of kir serve, on every replica, until kir runs unpause (a run already going goes on)"
	}
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: o.recordOptions.flags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("kir runs %s takes no arguments", name)}
			}
			_, s, err := o.store(c)
			if err != nil {
				return err
			}
			b := &budget.Budget{Client: s.env.Kube, Namespace: o.guard.namespace, Config: budget.DefaultConfig()}
			if err := b.SetPaused(c.Context, pause, s.env.Actor); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "kir serve %sd by %s (ConfigMap %s/kir-budget)\n", name, s.env.Actor, o.guard.namespace)
			return nil
		},
	}
}
