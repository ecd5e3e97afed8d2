package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/dynamic"

	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// The playbooks a rotation runs; kir rotate status lists their runs.
var rotationPlaybooks = []string{"rotate-secret", "rotate-kubeconfig", "rotate-serviceaccount", "rotate-x509-user", "rollback-secret", "rollback-x509-user"}

const (
	flagEndpointURL = "endpoint-url"
	flagRegion      = "region"
)

// storeFlags reach Secrets Manager; Vault is configured by its own
// environment variables (VAULT_ADDR, VAULT_TOKEN, …) and KIR_VAULT_AUTH.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagEndpointURL, Usage: "Secrets Manager-compatible server to use instead of AWS's", EnvVars: []string{"KIR_AWS_ENDPOINT_URL"}},
		&cli.StringFlag{Name: flagRegion, Usage: "AWS region (default: the AWS configuration's)"},
	}
}

func storeParams(c *cli.Context, params map[string]any) map[string]any {
	params["endpointURL"], params["region"] = c.String(flagEndpointURL), c.String(flagRegion)
	return params
}

func rotateCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "replace credentials the attacker may have read: secrets in Vault and Secrets Manager, service-account tokens, kubeconfigs",
		Description: "Every rotation is a journaled run (its id is the rotation id): killed at any point, `kir runs resume ID` finishes it,\n" +
			"and `kir rotate rollback ID` undoes a secret's. Values are never printed, logged or journaled: only versions and fingerprints.\n" +
			"Vault: VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_NAMESPACE; KIR_VAULT_AUTH=kubernetes (KIR_VAULT_ROLE, KIR_VAULT_JWT_FILE)\n" +
			"or approle (KIR_VAULT_ROLE_ID, KIR_VAULT_SECRET_ID_FILE); KIR_VAULT_AUTH_MOUNT. Secrets Manager: the standard AWS configuration.",
		Subcommands: []*cli.Command{
			{
				Name:      "secret",
				Usage:     "write a new value (CSPRNG, or --from-file) for a secret, or one key of it, and make it current",
				ArgsUsage: "vault://MOUNT/PATH[#KEY] | aws-sm://NAME[#KEY]",
				Flags: flagsOf(playbookFlags(), storeFlags(), writeFlags(), []cli.Flag{
					&cli.IntFlag{Name: "length", Usage: "length of the generated value (default 32)"},
					&cli.StringFlag{Name: "alphabet", Usage: "characters of the generated value (default letters and digits)"},
					&cli.StringSliceFlag{Name: "key-spec", Usage: "KEY=LENGTH[:ALPHABET]: the length and alphabet of one key of the secret (repeat for more)"},
					&cli.StringFlag{Name: "from-file", Usage: "read the new value from this file (- for stdin) instead of generating one"},
					&cli.StringFlag{Name: "set-hook", Usage: "command (split on spaces, no shell) that pushes the new value, given on its stdin, to the system that uses it"},
					&cli.StringFlag{Name: "test-hook", Usage: "command that checks the system works with the new value, given on its stdin"},
					&cli.StringFlag{Name: "kube-secret", Usage: "NAMESPACE/NAME[#KEY] of a Kubernetes Secret that also holds the value: updated once the new value is current"},
					&cli.BoolFlag{Name: "restart-consumers", Usage: "with --kube-secret: restart the Deployments, StatefulSets and DaemonSets that use it"},
				}, kubeFlags()),
				Action: func(c *cli.Context) error {
					ref, err := oneRef(c)
					if err != nil {
						return err
					}
					if _, err := rotate.ParseKeySpecs(c.StringSlice("key-spec")); err != nil {
						return usageError{err}
					}
					if c.Bool("restart-consumers") && c.String("kube-secret") == "" {
						return usageError{errors.New("--restart-consumers restarts the users of --kube-secret: give it")}
					}
					// Vault and Secrets Manager alone need no cluster.
					s, err := offline(c, false)
					if c.String("kube-secret") != "" {
						s, err = connect(c.Context, c, false)
					}
					if err != nil {
						return err
					}
					return runPlaybook(c, s, "rotate secret", "rotate-secret", storeParams(c, given(map[string]any{
						"ref": ref, "length": c.Int("length"), "alphabet": c.String("alphabet"), "keySpecs": c.StringSlice("key-spec"),
						"valueFile": valueFile(c.String("from-file")),
						"setHook":   strings.Fields(c.String("set-hook")), "testHook": strings.Fields(c.String("test-hook")),
						"kubeSecret": c.String("kube-secret"), "restartConsumers": c.Bool("restart-consumers"),
					})))
				},
			},
			{
				Name:      "serviceaccount",
				Usage:     "revoke a ServiceAccount's tokens: delete its legacy token Secrets, recreate it, restart its workloads, confirm with TokenReview",
				ArgsUsage: "NAMESPACE/NAME",
				Flags: flagsOf(kubeFlags(), playbookFlags(), writeFlags(), []cli.Flag{
					&cli.BoolFlag{Name: "yes", Usage: "revocation cannot be rolled back: confirm it"},
					&cli.DurationFlag{Name: "confirm-timeout", Value: 2 * time.Minute, Usage: "how long to wait for TokenReview to reject an old token"},
					&cli.BoolFlag{Name: "no-restart", Usage: "do not restart the workloads that run as it"},
				}),
				Action: func(c *cli.Context) error {
					ns, name, err := nsName(c, "NAMESPACE/NAME of the ServiceAccount")
					if err != nil {
						return err
					}
					if dry := c.String(flagDryRun); !c.Bool("yes") && (dry == "" || dry == "none") {
						return usageError{fmt.Errorf("revoking the tokens of ServiceAccount %s/%s cannot be rolled back: every workload running as it needs a new token; rerun with --yes", ns, name)}
					}
					s, err := connect(c.Context, c, false)
					if err != nil {
						return err
					}
					return runPlaybook(c, s, "rotate serviceaccount", "rotate-serviceaccount", given(map[string]any{
						"namespace": ns, "name": name, "confirmTimeout": c.Duration("confirm-timeout").String(),
						"restart": !c.Bool("no-restart"),
					}))
				},
			},
			{
				Name:  "kubeconfig",
				Usage: "issue a short-lived kubeconfig for a ServiceAccount (TokenRequest), or replace an x509 user's certificate (CSR), and store it in Vault or Secrets Manager",
				Flags: flagsOf(kubeFlags(), playbookFlags(), storeFlags(), writeFlags(), []cli.Flag{
					&cli.StringFlag{Name: "for", Required: true, Usage: "NAMESPACE/SERVICEACCOUNT the kubeconfig authenticates as, or user:NAME for an x509 user: its certificate cannot be revoked, so its RoleBindings and ClusterRoleBindings move to a new user NAME-kir-SUFFIX, whose certificate is issued (needs the kir-rotate-x509 role)"},
					&cli.StringFlag{Name: "store", Required: true, Usage: "where to store it: vault://MOUNT/PATH[#KEY] (key default kubeconfig) or aws-sm://NAME[#KEY]"},
					&cli.DurationFlag{Name: "ttl", Value: rotate.DefaultKubeconfigTTL, Usage: "lifetime of its token (user:NAME: of its certificate, default 24h, at least 10m)"},
					&cli.BoolFlag{Name: "show", Usage: "also print the kubeconfig on stdout (it holds a credential)"},
				}),
				Action: func(c *cli.Context) error {
					if _, err := rotate.ParseRef(c.String("store")); err != nil {
						return usageError{err}
					}
					playbook := "rotate-kubeconfig"
					params := given(map[string]any{
						"serviceAccount": c.String("for"), "store": c.String("store"), "ttl": c.Duration("ttl").String(),
					})
					if user, ok := strings.CutPrefix(c.String("for"), "user:"); ok {
						playbook = "rotate-x509-user"
						params = map[string]any{"user": user, "store": c.String("store")}
						if c.IsSet("ttl") {
							params["expiration"] = c.Duration("ttl").String()
						}
						fmt.Fprintf(c.App.ErrWriter, "kir: x509 client certificates cannot be revoked: %s's stolen certificate stays valid until it expires. "+
							"kir moves %s's RoleBindings and ClusterRoleBindings to a new user and issues that user a certificate; "+
							"a member of a group bound elsewhere (system:masters above all) keeps that group's access.\n", user, user)
					}
					params = storeParams(c, params)
					s, err := connect(c.Context, c, false)
					if err != nil {
						return err
					}
					if c.Bool("show") && s.format != "text" {
						return usageError{errors.New("--show prints the kubeconfig itself: use it with -o text")}
					}
					run, err := startPlaybook(c, s, playbook, params)
					if err != nil {
						return err
					}
					if err := s.report(c, "rotate kubeconfig", run); err != nil || !c.Bool("show") || !s.env.DryRun.Persists() {
						return err
					}
					rec, err := rotationOf(run)
					if err != nil {
						return err
					}
					v, err := rotate.ReadValue(c.Context, rec.Ref, rotate.SecretParams{EndpointURL: c.String(flagEndpointURL), Region: c.String(flagRegion)}, rec.NewVersion)
					if err != nil {
						return err
					}
					_, err = fmt.Fprint(c.App.Writer, v)
					return err
				},
			},
			{
				Name:      "rollback",
				Usage:     "make the version current before a secret's rotation current again (an x509 user's: give its bindings back too)",
				ArgsUsage: "ROTATION-ID",
				Flags:     flagsOf(kubeFlags(), playbookFlags(), storeFlags(), writeFlags()),
				Action: func(c *cli.Context) error {
					_, run, err := loadRun(c, "ROTATION-ID")
					if err != nil {
						return err
					}
					id := run.ID
					s, err := offline(c, false)
					if err != nil {
						return err
					}
					s.env.Incident = run.Incident
					rollback := func(rotation string, rec rotate.SecretRotation) error {
						params := map[string]any{"rotation": rotation, "ref": rec.Ref, "oldVersion": rec.OldVersion, "newVersion": rec.NewVersion}
						return runPlaybook(c, s, "rotate rollback", "rollback-secret", rollbackStore(c, run, params))
					}
					if run.Playbook == "rotate-x509-user" {
						return rollbackX509(c, s, run)
					}
					if run.Playbook == "rotate-secret" || run.Playbook == "rotate-kubeconfig" {
						rec, err := rotationOf(run)
						if err != nil {
							return err
						}
						return rollback(id, rec)
					}
					// A containment that rotated the pod's secrets
					// (--rotate-secrets): each one is rolled back.
					recs := podRotationsOf(run)
					if len(recs) == 0 {
						return usageError{fmt.Errorf("run %s (%s) rotated no secret: nothing to roll back", id, run.Playbook)}
					}
					var errs []error
					for _, rec := range recs {
						errs = append(errs, rollback(id+"/"+rec.Ref, rec))
					}
					return errors.Join(errs...)
				},
			},
			{
				Name:      "status",
				Usage:     "list rotations (and rollbacks), or show one",
				ArgsUsage: "[ROTATION-ID]",
				Flags:     []cli.Flag{stateDirFlag(), outputFlag()},
				Action: func(c *cli.Context) error {
					eng, err := newEngine(c)
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
						return printReport(c.App.Writer, c.String(flagOutput), reportOf("rotate status", run))
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
					if f := c.String(flagOutput); f == "json" || f == "yaml" {
						return printStructured(c.App.Writer, f, rows)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ROTATION\tPLAYBOOK\tTARGET\tOLD\tNEW\tSTATUS\tSTARTED")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, r.Target, dash(r.OldVersion), dash(r.NewVersion), r.Status, r.Started.UTC().Format(time.RFC3339))
					}
					return tw.Flush()
				},
			},
			{
				Name:  "plan",
				Usage: "list what a pod could read, and the kir rotate command for each",
				Subcommands: []*cli.Command{{
					Name:      "pod",
					Usage:     "mounted and env-referenced Secrets, its ServiceAccount, Vault and External Secrets references",
					ArgsUsage: "NAME",
					Flags:     flagsOf(kubeFlags(), []cli.Flag{namespaceFlag(), outputFlag()}),
					Action:    planPod,
				}},
			},
		},
	}
}

// rollbackX509 undoes a rotate-x509-user run: the bindings go back to the
// user, and the kubeconfig stored before is current again. The new user is
// derived from the rotation, so even a run that failed half-way is undone.
func rollbackX509(c *cli.Context, offline *session, run *playbooks.Run) error {
	user, _ := run.Params["user"].(string)
	params := map[string]any{"rotation": run.ID, "user": user, "newUser": rotate.X509NewUser(run.ID, user)}
	if rec, err := rotationOf(run); err == nil {
		params["ref"], params["oldVersion"], params["newVersion"] = rec.Ref, rec.OldVersion, rec.NewVersion
	}
	s, err := connect(c.Context, c, false)
	if err != nil {
		return err
	}
	s.env.Incident = offline.env.Incident
	return runPlaybook(c, s, "rotate rollback", "rollback-x509-user", rollbackStore(c, run, params))
}

// rollbackStore adds to a rollback's params the store settings the
// rotation ran with, unless the command gives its own.
func rollbackStore(c *cli.Context, run *playbooks.Run, params map[string]any) map[string]any {
	for _, k := range []string{"endpointURL", "region"} {
		if v, ok := run.Params[k].(string); ok && v != "" {
			params[k] = v
		}
	}
	if c.IsSet(flagEndpointURL) || c.IsSet(flagRegion) {
		storeParams(c, params)
	}
	return params
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

// valueFile is --from-file as the playbook takes it: "-" (stdin) as is,
// a path made absolute.
func valueFile(f string) string {
	if f == "-" {
		return f
	}
	return absPath(f)
}

// oneRef returns the one secret reference argument.
func oneRef(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageError{errors.New("give exactly one secret: vault://MOUNT/PATH[#KEY] or aws-sm://NAME[#KEY]")}
	}
	if _, err := rotate.ParseRef(c.Args().First()); err != nil {
		return "", usageError{err}
	}
	return c.Args().First(), nil
}

// nsName returns the one NAMESPACE/NAME argument.
func nsName(c *cli.Context, what string) (string, string, error) {
	if c.NArg() != 1 {
		return "", "", usageError{errors.New("give exactly one " + what)}
	}
	ns, name, ok := strings.Cut(c.Args().First(), "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", usageError{fmt.Errorf("%q: want %s", c.Args().First(), what)}
	}
	return ns, name, nil
}

// planPod prints what a pod could read.
func planPod(c *cli.Context) error {
	name, err := oneName(c, "pod")
	if err != nil {
		return err
	}
	s, err := connect(c.Context, c, false)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(s.client.Config)
	if err != nil {
		return err
	}
	plan, err := rotate.PlanPod(c.Context, s.client.Interface, dyn, s.namespace, name)
	if err != nil {
		return err
	}
	if s.format != "text" {
		return printStructured(c.App.Writer, s.format, plan)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "pod %s/%s runs as ServiceAccount %s (token automounted: %t)\n", plan.Namespace, plan.Pod, plan.ServiceAccount, plan.AutomountToken)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tREF\tVIA\tROTATE WITH")
	for _, it := range plan.Items {
		cmd := it.Command
		if cmd == "" {
			cmd = "- " + it.Note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Kind, it.Ref, strings.Join(it.Via, ", "), cmd)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, warn := range plan.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", warn)
	}
	return nil
}
