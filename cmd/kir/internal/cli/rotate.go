package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/dynamic"

	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

const (
	flagEndpointURL = "endpoint-url"
	flagRegion      = "region"
)

func rotateCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "replace credentials the attacker may have read: secrets in Vault and Secrets Manager, service-account tokens, kubeconfigs",
		Description: "Every rotation is a journaled run (its id is the rotation id): killed at any point, `kir runs resume ID` finishes it,\n" +
			"and `kir rotate rollback ID` undoes a secret's. Values are never printed, logged or journaled: only versions and fingerprints.\n" +
			"Vault: VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_NAMESPACE; KIR_VAULT_AUTH=kubernetes (KIR_VAULT_ROLE, KIR_VAULT_JWT_FILE)\n" +
			"or approle (KIR_VAULT_ROLE_ID, KIR_VAULT_SECRET_ID_FILE); KIR_VAULT_AUTH_MOUNT. Secrets Manager: the standard AWS configuration.",
		Subcommands: []*cli.Command{
			rotateSecretCommand(), rotateServiceAccountCommand(), rotateKubeconfigCommand(),
			rotateRollbackCommand(), rotateStatusCommand(),
			{
				Name:        "plan",
				Usage:       "list what a pod could read, and the kir rotate command for each",
				Subcommands: []*cli.Command{rotatePlanPodCommand()},
			},
		},
	}
}

// storeOptions reach Secrets Manager; Vault is configured by its own
// environment variables (VAULT_ADDR, VAULT_TOKEN, …) and KIR_VAULT_AUTH.
type storeOptions struct {
	endpointURL string
	region      string
}

func (o *storeOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagEndpointURL, Usage: "Secrets Manager-compatible server to use instead of AWS's", EnvVars: envVars("KIR_AWS_ENDPOINT_URL"), Destination: &o.endpointURL},
		&cli.StringFlag{Name: flagRegion, Usage: "AWS region (default: the AWS configuration's)", Destination: &o.region},
	}
}

// params are the store parameters of the rotation playbooks.
func (o *storeOptions) params() []param {
	return []param{{flagEndpointURL, "endpointURL", o.endpointURL}, {flagRegion, "region", o.region}}
}

// secretParams reach the store as the flags say.
func (o *storeOptions) secretParams() rotate.SecretParams {
	return rotate.SecretParams{EndpointURL: o.endpointURL, Region: o.region}
}

// rotateSecretOptions are kir rotate secret's flags.
type rotateSecretOptions struct {
	playbook         playbookOptions
	store            storeOptions
	write            writeOptions
	kube             kubeOptions
	length           int
	alphabet         string
	keySpecs         cli.StringSlice
	fromFile         string
	setHook          string
	testHook         string
	kubeSecret       string
	restartConsumers bool
}

func (o *rotateSecretOptions) flags() []cli.Flag {
	return flagsOf(o.playbook.flags(), o.store.flags(), o.write.flags(), []cli.Flag{
		&cli.IntFlag{Name: "length", Usage: "length of the generated value (default 32)", Destination: &o.length},
		&cli.StringFlag{Name: "alphabet", Usage: "characters of the generated value (default letters and digits)", Destination: &o.alphabet},
		&cli.StringSliceFlag{Name: "key-spec", Usage: "KEY=LENGTH[:ALPHABET]: the length and alphabet of one key of the secret (repeat for more)", Destination: &o.keySpecs},
		&cli.StringFlag{Name: "from-file", Usage: "read the new value from this file (- for stdin) instead of generating one", Destination: &o.fromFile},
		&cli.StringFlag{Name: "set-hook", Usage: "command (split on spaces, no shell) that pushes the new value, given on its stdin, to the system that uses it", Destination: &o.setHook},
		&cli.StringFlag{Name: "test-hook", Usage: "command that checks the system works with the new value, given on its stdin", Destination: &o.testHook},
		&cli.StringFlag{Name: "kube-secret", Usage: "NAMESPACE/NAME[#KEY] of a Kubernetes Secret that also holds the value: updated once the new value is current", Destination: &o.kubeSecret},
		&cli.BoolFlag{Name: "restart-consumers", Usage: "with --kube-secret: restart the Deployments, StatefulSets and DaemonSets that use it", Destination: &o.restartConsumers},
	}, o.kube.flags())
}

// params are the rotate-secret playbook's parameters.
func (o *rotateSecretOptions) params(ref string) []param {
	return append([]param{
		arg("ref", ref),
		{"length", "length", o.length},
		{"alphabet", "alphabet", o.alphabet},
		{"key-spec", "keySpecs", o.keySpecs.Value()},
		{"from-file", "valueFile", valueFile(o.fromFile)},
		{"set-hook", "setHook", strings.Fields(o.setHook)},
		{"test-hook", "testHook", strings.Fields(o.testHook)},
		{"kube-secret", "kubeSecret", o.kubeSecret},
		{"restart-consumers", "restartConsumers", o.restartConsumers},
	}, o.store.params()...)
}

// check refuses what the playbook would refuse, before anything runs.
func (o *rotateSecretOptions) check() error {
	if _, err := rotate.ParseKeySpecs(o.keySpecs.Value()); err != nil {
		return usageError{err}
	}
	if o.restartConsumers && o.kubeSecret == "" {
		return usageError{errors.New("--restart-consumers restarts the users of --kube-secret: give it")}
	}
	return nil
}

func rotateSecretCommand() *cli.Command {
	o := &rotateSecretOptions{}
	return &cli.Command{
		Name:      "secret",
		Usage:     "write a new value (CSPRNG, or --from-file) for a secret, or one key of it, and make it current",
		ArgsUsage: "vault://MOUNT/PATH[#KEY] | aws-sm://NAME[#KEY]",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			ref, err := oneRef(c)
			if err != nil {
				return err
			}
			if err := o.check(); err != nil {
				return err
			}
			// Vault and Secrets Manager alone need no cluster.
			s, err := offline(c, &o.write, givenIncident)
			if o.kubeSecret != "" {
				s, err = online(c, &o.kube, &o.write, givenIncident)
			}
			if err != nil {
				return err
			}
			return o.playbook.run(c, s, "rotate secret", "rotate-secret", o.params(ref))
		},
	}
}

// rotateServiceAccountOptions are kir rotate serviceaccount's flags.
type rotateServiceAccountOptions struct {
	kube           kubeOptions
	playbook       playbookOptions
	write          writeOptions
	confirmTimeout time.Duration
	noRestart      bool
}

func (o *rotateServiceAccountOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.playbook.flags(), o.write.flags(), o.playbook.guard.flags(flagForce), []cli.Flag{
		o.playbook.approval.flag("revocation cannot be rolled back: confirm it (approves the playbook's revoke step)"),
		&cli.DurationFlag{Name: "confirm-timeout", Usage: "how long to wait for TokenReview to reject an old token", DefaultText: "2m, the playbook's", Destination: &o.confirmTimeout},
		&cli.BoolFlag{Name: "no-restart", Usage: "do not restart the workloads that run as it", Destination: &o.noRestart},
	})
}

func rotateServiceAccountCommand() *cli.Command {
	o := &rotateServiceAccountOptions{}
	return &cli.Command{
		Name:      "serviceaccount",
		Usage:     "revoke a ServiceAccount's tokens: delete its legacy token Secrets, recreate it, restart its workloads, confirm with TokenReview",
		ArgsUsage: "NAMESPACE/NAME",
		Flags:     o.flags(),
		Action: func(c *cli.Context) error {
			ns, name, err := nsName(c, "NAMESPACE/NAME of the ServiceAccount")
			if err != nil {
				return err
			}
			if !o.playbook.approval.yes && o.write.persists() {
				return usageError{fmt.Errorf("revoking the tokens of ServiceAccount %s/%s cannot be rolled back: every workload running as it needs a new token; rerun with --yes", ns, name)}
			}
			s, err := online(c, &o.kube, &o.write, givenIncident)
			if err != nil {
				return err
			}
			return o.playbook.run(c, s, "rotate serviceaccount", "rotate-serviceaccount", []param{
				arg("namespace", ns), arg("name", name),
				{"confirm-timeout", "confirmTimeout", o.confirmTimeout.String()},
				{"no-restart", "restart", !o.noRestart},
			})
		},
	}
}

// rotateKubeconfigOptions are kir rotate kubeconfig's flags.
type rotateKubeconfigOptions struct {
	kube     kubeOptions
	playbook playbookOptions
	store    storeOptions
	write    writeOptions
	subject  string
	storeRef string
	ttl      time.Duration
	show     bool
}

func (o *rotateKubeconfigOptions) flags() []cli.Flag {
	return flagsOf(o.kube.flags(), o.playbook.flags(), o.store.flags(), o.write.flags(), []cli.Flag{
		&cli.StringFlag{Name: "for", Required: true, Destination: &o.subject, Usage: "NAMESPACE/SERVICEACCOUNT the kubeconfig authenticates as, or user:NAME for an x509 user: its certificate cannot be revoked, so its RoleBindings and ClusterRoleBindings move to a new user NAME-kir-SUFFIX, whose certificate is issued (needs the kir-rotate-x509 role)"},
		&cli.StringFlag{Name: "store", Required: true, Destination: &o.storeRef, Usage: "where to store it: vault://MOUNT/PATH[#KEY] (key default kubeconfig) or aws-sm://NAME[#KEY]"},
		&cli.DurationFlag{Name: "ttl", Destination: &o.ttl, DefaultText: "8h, the playbook's", Usage: "lifetime of its token (user:NAME: of its certificate, default 24h, at least 10m)"},
		&cli.BoolFlag{Name: "show", Destination: &o.show, Usage: "also print the kubeconfig on stdout (it holds a credential)"},
	})
}

// playbook is the playbook that issues the kubeconfig, and its
// parameters: a ServiceAccount's token, or an x509 user's certificate.
func (o *rotateKubeconfigOptions) params() (playbook string, params []param) {
	store := append([]param{{"store", "store", o.storeRef}}, o.store.params()...)
	if user, ok := o.x509User(); ok {
		return "rotate-x509-user", append(store, param{"for", "user", user}, param{"ttl", "expiration", o.ttl.String()})
	}
	return "rotate-kubeconfig", append(store, param{"for", "serviceAccount", o.subject}, param{"ttl", "ttl", o.ttl.String()})
}

// x509User is the user of --for user:NAME.
func (o *rotateKubeconfigOptions) x509User() (string, bool) {
	return strings.CutPrefix(o.subject, "user:")
}

func rotateKubeconfigCommand() *cli.Command {
	o := &rotateKubeconfigOptions{}
	return &cli.Command{
		Name:   "kubeconfig",
		Usage:  "issue a short-lived kubeconfig for a ServiceAccount (TokenRequest), or replace an x509 user's certificate (CSR), and store it in Vault or Secrets Manager",
		Flags:  o.flags(),
		Action: o.rotate,
	}
}

func (o *rotateKubeconfigOptions) rotate(c *cli.Context) error {
	if _, err := rotate.ParseRef(o.storeRef); err != nil {
		return usageError{err}
	}
	if err := o.write.output.check(); err != nil {
		return err
	}
	if o.show && o.write.output.format != "text" {
		return usageError{errors.New("--show prints the kubeconfig itself: use it with -o text")}
	}
	if user, ok := o.x509User(); ok {
		fmt.Fprintf(c.App.ErrWriter, "kir: x509 client certificates cannot be revoked: %s's stolen certificate stays valid until it expires. "+
			"kir moves %s's RoleBindings and ClusterRoleBindings to a new user and issues that user a certificate; "+
			"a member of a group bound elsewhere (system:masters above all) keeps that group's access.\n", user, user)
	}
	s, err := online(c, &o.kube, &o.write, givenIncident)
	if err != nil {
		return err
	}
	playbook, params := o.params()
	run, err := o.playbook.start(c, s, playbook, params)
	if err != nil {
		return err
	}
	if err := s.report(c, "rotate kubeconfig", run); err != nil || !o.show || !s.env.DryRun.Persists() {
		return err
	}
	recs := rotations(run)
	if len(recs) == 0 {
		return noRotation(run, playbooks.CategoryRotation)
	}
	v, err := stores().ReadValue(c.Context, recs[0].Ref, o.store.secretParams(), recs[0].NewVersion)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(c.App.Writer, v)
	return err
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

// rotatePlanPodOptions are kir rotate plan pod's flags.
type rotatePlanPodOptions struct {
	kube   kubeOptions
	target targetOptions
	write  writeOptions // -o only
}

func rotatePlanPodCommand() *cli.Command {
	o := &rotatePlanPodOptions{}
	return &cli.Command{
		Name:      "pod",
		Usage:     "mounted and env-referenced Secrets, its ServiceAccount, Vault and External Secrets references",
		ArgsUsage: "NAME",
		Flags:     flagsOf(o.kube.flags(), []cli.Flag{o.target.namespaceFlag(), o.write.output.flag()}),
		Action:    o.plan,
	}
}

// plan prints what a pod could read.
func (o *rotatePlanPodOptions) plan(c *cli.Context) error {
	name, err := oneName(c, "pod")
	if err != nil {
		return err
	}
	s, err := online(c, &o.kube, &o.write, givenIncident)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(s.client.Config)
	if err != nil {
		return err
	}
	plan, err := rotate.PlanPod(c.Context, s.client.Interface, dyn, s.namespace(o.target.namespace), name)
	if err != nil {
		return err
	}
	if s.format != "text" {
		return printStructured(c.App.Writer, s.format, plan)
	}
	return printPlan(c, plan)
}

func printPlan(c *cli.Context, plan *rotate.Plan) error {
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
