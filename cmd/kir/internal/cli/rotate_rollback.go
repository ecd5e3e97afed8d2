package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// The playbooks a rotation runs; kir rotate status lists their runs.
var rotationPlaybooks = []string{"rotate-secret", "rotate-kubeconfig", "rotate-serviceaccount", "rotate-x509-user", "rollback-secret", "rollback-x509-user"}

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

func (o *rotateRollbackOptions) rollback(c *cli.Context) error {
	_, run, err := o.playbook.state.load(c, "ROTATION-ID")
	if err != nil {
		return err
	}
	// A rollback belongs to its rotation's incident.
	o.write.incident = run.Incident
	if run.Playbook == "rotate-x509-user" {
		return o.rollbackX509(c, run)
	}
	s, err := offline(c, &o.write, givenIncident)
	if err != nil {
		return err
	}
	if run.Playbook == "rotate-secret" || run.Playbook == "rotate-kubeconfig" {
		rec, err := rotationOf(run)
		if err != nil {
			return err
		}
		return o.playbook.run(c, s, "rotate rollback", "rollback-secret", o.secretParams(run, run.ID, rec))
	}
	// A containment that rotated the pod's secrets (--rotate-secrets):
	// each one is rolled back.
	recs := podRotationsOf(run)
	if len(recs) == 0 {
		return usageError{fmt.Errorf("run %s (%s) rotated no secret: nothing to roll back", run.ID, run.Playbook)}
	}
	var errs []error
	for _, rec := range recs {
		errs = append(errs, o.playbook.run(c, s, "rotate rollback", "rollback-secret", o.secretParams(run, run.ID+"/"+rec.Ref, rec)))
	}
	return errors.Join(errs...)
}

// secretParams are rollback-secret's parameters for one secret's
// rotation.
func (o *rotateRollbackOptions) secretParams(run *playbooks.Run, rotation string, rec rotate.SecretRotation) []param {
	return o.withStore(run, arg("rotation", rotation), arg("ref", rec.Ref), arg("oldVersion", rec.OldVersion), arg("newVersion", rec.NewVersion))
}

// rollbackX509 undoes a rotate-x509-user run: the bindings go back to the
// user, and the kubeconfig stored before is current again. The new user is
// derived from the rotation, so even a run that failed half-way is undone.
func (o *rotateRollbackOptions) rollbackX509(c *cli.Context, run *playbooks.Run) error {
	user, _ := run.Params["user"].(string)
	params := []param{arg("rotation", run.ID), arg("user", user), arg("newUser", rotate.X509NewUser(run.ID, user))}
	if rec, err := rotationOf(run); err == nil {
		params = append(params, arg("ref", rec.Ref), arg("oldVersion", rec.OldVersion), arg("newVersion", rec.NewVersion))
	}
	s, err := online(c, &o.kube, &o.write, givenIncident)
	if err != nil {
		return err
	}
	return o.playbook.run(c, s, "rotate rollback", "rollback-x509-user", o.withStore(run, params...))
}

// withStore adds to a rollback's params the store settings the rotation
// ran with; the command's own flags, when set, win.
func (o *rotateRollbackOptions) withStore(run *playbooks.Run, params ...param) []param {
	for _, k := range []string{"endpointURL", "region"} {
		if v, ok := run.Params[k].(string); ok && v != "" {
			params = append(params, arg(k, v))
		}
	}
	return append(params, o.store.params()...)
}

func rotateStatusCommand() *cli.Command {
	o := &journalOptions{}
	return &cli.Command{
		Name:      "status",
		Usage:     "list rotations (and rollbacks), or show one",
		ArgsUsage: "[ROTATION-ID]",
		Flags:     o.flags(),
		Action:    o.rotations,
	}
}

func (o *journalOptions) rotations(c *cli.Context) error {
	eng, err := o.state.engine()
	if err != nil {
		return err
	}
	if c.NArg() > 1 {
		return usageError{errors.New("give at most one ROTATION-ID")}
	}
	if c.NArg() == 1 {
		id := c.Args().First()
		run, err := eng.Load(id)
		if err != nil {
			return notFoundRun(id, err)
		}
		return printReport(c.App.Writer, o.output.format, reportOf("rotate status", run))
	}
	runs, err := eng.List()
	if err != nil {
		return err
	}
	runs = slices.DeleteFunc(runs, func(r *playbooks.Run) bool { return !slices.Contains(rotationPlaybooks, r.Playbook) })
	rows := make([]rotationRow, 0, len(runs))
	for _, r := range runs {
		rows = append(rows, rowOf(r))
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

func rowOf(r *playbooks.Run) rotationRow {
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
	if r.Playbook == "rollback-secret" || r.Playbook == "rollback-x509-user" {
		row.OldVersion, _ = r.Params["newVersion"].(string)
		row.NewVersion, _ = r.Params["oldVersion"].(string)
		return row
	}
	if rec, err := rotationOf(r); err == nil {
		row.OldVersion, row.NewVersion = rec.OldVersion, rec.NewVersion
	}
	return row
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rotationOf returns the record of a secret's rotation from its issue step.
func rotationOf(run *playbooks.Run) (rotate.SecretRotation, error) {
	st := run.Step("issue")
	if st == nil || st.Status != playbooks.StepSucceeded {
		status := "not run"
		if st != nil {
			status = st.Status
		}
		return rotate.SecretRotation{}, fmt.Errorf("rotation %s issued no version (its issue step: %s): nothing to roll back; `kir runs resume %s` finishes it", run.ID, status, run.ID)
	}
	out, _ := st.Output.(map[string]any)
	str := func(k string) string { s, _ := out[k].(string); return s }
	rec := rotate.SecretRotation{Ref: str("ref"), Store: str("store"), OldVersion: str("oldVersion"), NewVersion: str("newVersion"), Fingerprint: str("fingerprint")}
	if rec.Ref == "" || rec.NewVersion == "" {
		return rec, fmt.Errorf("rotation %s: its issue step recorded no version", run.ID)
	}
	return rec, nil
}

// podRotationsOf returns the secret rotations of a run's
// rotate.pod-credentials steps.
func podRotationsOf(run *playbooks.Run) []rotate.SecretRotation {
	var out []rotate.SecretRotation
	for _, st := range run.Steps {
		if st.Action != "rotate.pod-credentials" || st.Output == nil {
			continue
		}
		b, err := json.Marshal(st.Output)
		if err != nil {
			continue
		}
		var o rotate.PodOutput
		if json.Unmarshal(b, &o) == nil {
			out = append(out, o.Secrets...)
		}
	}
	return out
}
