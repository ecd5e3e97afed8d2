package cli

import (
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// rotateRollbackOptions are kir rotate rollback's flags.
type rotateRollbackOptions struct {
	kube     kubeOptions
	playbook playbookOptions
	store    storeOptions
	write    writeOptions
}

func rotateRollbackCommand() *cli.Command {
	o := &rotateRollbackOptions{}
	return &cli.Command{
		Name:      "rollback",
		Usage:     "make the version current before a secret's rotation current again (an x509 user's: give its bindings back too)",
		ArgsUsage: "ROTATION-ID",
		Flags:     flagsOf(o.kube.flags(), o.playbook.flags(), o.store.flags(), o.write.flags()),
		Action:    o.rollback,
	}
}

// rollback runs the playbook the rotation's playbook names as its rollback
// (metadata.rollback) for what the run rotated.
func (o *rotateRollbackOptions) rollback(c *cli.Context) error {
	_, run, err := o.playbook.state.load(c, "ROTATION-ID")
	if err != nil {
		return err
	}
	rotation, undo, err := o.undoing(run)
	if err != nil {
		return err
	}
	each, err := o.params(run, rotation, undo)
	if err != nil {
		return err
	}
	o.write.incident = run.Incident // a rollback belongs to its rotation's incident
	s, err := offline(c, &o.write, givenIncident)
	if needsCluster(registry(), actionsOf(undo.Playbook)) {
		s, err = online(c, &o.kube, &o.write, givenIncident)
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, params := range each {
		errs = append(errs, o.playbook.run(c, s, "rotate rollback", undo.Name, params))
	}
	return errors.Join(errs...)
}

// undoing returns the playbook run ran, and the one that rolls it back.
func (o *rotateRollbackOptions) undoing(run *playbooks.Run) (ran, undo *playbooks.Entry, err error) {
	lib, err := o.playbook.library()
	if err != nil {
		return nil, nil, err
	}
	ran, ok := lib.Get(run.Playbook)
	if !ok || ran.Rollback == "" {
		return nil, nil, usageError{fmt.Errorf("run %s (%s) rotated no secret: nothing to roll back", run.ID, run.Playbook)}
	}
	undo, err = entry(lib, ran.Rollback)
	return ran, undo, err
}

// params are the parameters of each rollback: one per secret rotated, or
// one for an x509 user (a playbook that takes the user), whose bindings
// go back even when its rotation failed half-way. Each is given what the
// playbook declares of what the run knows; the store flags, when set, win
// over the rotation's.
func (o *rotateRollbackOptions) params(run *playbooks.Run, ran, undo *playbooks.Entry) ([][]param, error) {
	recs := rotations(run)
	known := storeOf(run)
	if undo.Takes("user") {
		user, _ := run.Params["user"].(string)
		known = append(known, arg("rotation", run.ID), arg("user", user), arg("newUser", rotate.X509NewUser(run.ID, user)))
		if len(recs) > 1 {
			recs = recs[:1]
		} else if len(recs) == 0 {
			recs = []rotate.Rotation{{ID: run.ID}}
		}
	}
	if len(recs) == 0 {
		return nil, noRotation(run, ran.Category)
	}
	var each [][]param
	for _, r := range recs {
		ps := append(slices.Clone(known), arg("rotation", r.ID))
		if r.NewVersion != "" {
			ps = append(ps, arg("ref", r.Ref), arg("oldVersion", r.OldVersion), arg("newVersion", r.NewVersion))
		}
		ps = slices.DeleteFunc(ps, func(p param) bool { return !undo.Takes(p.name) })
		each = append(each, append(ps, o.store.params()...))
	}
	return each, nil
}

// noRotation is the error of a run that rotated nothing: a rotation that
// stopped before it wrote a version, or a run that rotates only on request
// (kir contain pod --rotate-secrets).
func noRotation(run *playbooks.Run, category string) error {
	if category == playbooks.CategoryRotation {
		return fmt.Errorf("rotation %s issued no version (the run %s): nothing to roll back; `kir runs resume %s` finishes it", run.ID, run.Status, run.ID)
	}
	return usageError{fmt.Errorf("run %s (%s) rotated no secret: nothing to roll back", run.ID, run.Playbook)}
}

// storeOf are the store settings the rotation ran with.
func storeOf(run *playbooks.Run) []param {
	var ps []param
	for _, k := range []string{"endpointURL", "region"} {
		if v, ok := run.Params[k].(string); ok && v != "" {
			ps = append(ps, arg(k, v))
		}
	}
	return ps
}

// rotations returns the secrets a run's steps rotated: the outputs that
// are rotate.Rotated, decoded as their actions' types.
func rotations(run *playbooks.Run) []rotate.Rotation {
	reg := registry()
	var out []rotate.Rotation
	for _, st := range run.Steps {
		o, err := reg.Output(st.Action, st.Output)
		r, ok := o.(rotate.Rotated)
		if err != nil || !ok {
			continue
		}
		id, _ := st.Params["rotation"].(string)
		if id == "" {
			id = run.ID
		}
		out = append(out, r.Rotations(id)...)
	}
	return out
}

// actionsOf are the actions a playbook's steps run.
func actionsOf(pb *playbooks.Playbook) []string {
	var names []string
	for _, s := range pb.Steps {
		names = append(names, s.Action)
	}
	return names
}

// rotateStatusOptions are kir rotate status's flags.
type rotateStatusOptions struct {
	playbook playbookOptions
	output   outputOptions
}

func rotateStatusCommand() *cli.Command {
	o := &rotateStatusOptions{}
	return &cli.Command{
		Name:      "status",
		Usage:     "list rotations (and rollbacks), or show one",
		ArgsUsage: "[ROTATION-ID]",
		Flags:     append(o.playbook.flags(), o.output.flag()),
		Action:    o.status,
	}
}

func (o *rotateStatusOptions) status(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageError{errors.New("give at most one ROTATION-ID")}
	}
	eng, err := o.playbook.state.engine()
	if err != nil {
		return err
	}
	if c.NArg() == 1 {
		id := c.Args().First()
		run, err := eng.Load(id)
		if err != nil {
			return notFoundRun(id, err)
		}
		return printReport(c.App.Writer, o.output.format, reportOf("rotate status", run))
	}
	lib, err := o.playbook.library()
	if err != nil {
		return err
	}
	runs, err := eng.List()
	if err != nil {
		return err
	}
	rows := []rotationRow{}
	for _, r := range runs {
		if e, ok := lib.Get(r.Playbook); ok && (e.Category == playbooks.CategoryRotation || e.Category == playbooks.CategoryRollback) {
			rows = append(rows, rowOf(r, e.Category))
		}
	}
	return printRotations(c, o.output, rows)
}

func printRotations(c *cli.Context, out outputOptions, rows []rotationRow) error {
	if out.structured() {
		return printStructured(c.App.Writer, out.format, rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROTATION\tPLAYBOOK\tTARGET\tOLD\tNEW\tSTATUS\tSTARTED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, r.Target, dash(r.OldVersion), dash(r.NewVersion), r.Status, r.Started.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// rotationRow is one line of kir rotate status.
type rotationRow struct {
	ID         string    `json:"id"`
	Playbook   string    `json:"playbook"`
	Target     string    `json:"target"`
	OldVersion string    `json:"oldVersion,omitempty"`
	NewVersion string    `json:"newVersion,omitempty"`
	Status     string    `json:"status"`
	Started    time.Time `json:"started"`
}

// rowOf is the row of a run of a playbook of the category.
func rowOf(r *playbooks.Run, category string) rotationRow {
	row := rotationRow{ID: r.ID, Playbook: r.Playbook, Status: r.Status, Started: r.Started}
	for _, k := range []string{"ref", "store", "serviceAccount"} {
		if v, ok := r.Params[k].(string); ok && row.Target == "" {
			row.Target = v
		}
	}
	if ns, ok := r.Params["namespace"].(string); ok && row.Target == "" {
		name, _ := r.Params["name"].(string)
		row.Target = "serviceaccount " + ns + "/" + name
	}
	if u, ok := r.Params["user"].(string); ok {
		row.Target = "user:" + u
	}
	if category == playbooks.CategoryRollback {
		row.OldVersion, _ = r.Params["newVersion"].(string)
		row.NewVersion, _ = r.Params["oldVersion"].(string)
		return row
	}
	if recs := rotations(r); len(recs) > 0 {
		row.OldVersion, row.NewVersion = recs[0].OldVersion, recs[0].NewVersion
	}
	return row
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
