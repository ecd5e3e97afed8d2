package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/budget"
	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/record"
	"kir.dev/kir/serve"
	"kir.dev/kir/tamper"
)

// Flags of kir serve.
const (
	flagListen       = "listen"
	flagTokenFile    = "token-file"
	flagTLSCert      = "tls-cert"
	flagTLSKey       = "tls-key"
	flagClientCA     = "client-ca"
	flagRequireCert  = "require-client-cert"
	flagHMACFile     = "hmac-secret-file"
	flagConfig       = "config"
	flagWorkers      = "workers"
	flagQueue        = "queue"
	flagCollectors   = "collectors"
	flagBodyLimit    = "body-limit"
	flagIdentity     = "identity"
	flagLeaseNS      = "lease-namespace"
	flagLeaseTime    = "lease-duration"
	flagNoClaims     = "no-claims"
	flagNoRecords    = "no-records"
	flagShutdownWait = "shutdown-timeout"
)

// serveOptions are kir serve's flags.
type serveOptions struct {
	kube     kubeOptions
	playbook playbookOptions
	// The intake's credentials.
	tokenFile, hmacFile, tlsCert, tlsKey, clientCA string
	requireCert                                    bool
	// The server.
	listen, config, key        string
	workers, queue, collectors int
	bodyLimit                  int64
	shutdownTimeout            time.Duration
	// The claims.
	identity, leaseNamespace string
	leaseDuration            time.Duration
	noClaims, noRecords      bool
	noTamper                 bool
	holdFor                  time.Duration
	// The budget.
	budget   budget.Config
	noBudget bool
}

func serveCommand() *cli.Command {
	o := &serveOptions{}
	return &cli.Command{
		Name:  "serve",
		Usage: "receive Falco and Falcosidekick alerts over an authenticated webhook and run the playbooks they route to",
		Description: "Alerts are accepted by POST at / and /falco. Each is written to a durable spool before the 202;\n" +
			"a full queue answers 503 with Retry-After. Alerts are deduplicated by key (default: playbook,\n" +
			"namespace and pod) within a window, across replicas through a Lease per key. Without --config,\n" +
			"an alert of priority Critical or higher naming k8s.ns.name and k8s.pod.name runs contain-pod on\n" +
			"that pod. /healthz, /readyz and /metrics (Prometheus) are served on the same address.",
		Flags:  flagsOf(o.kube.flags(), o.playbook.flags(), []cli.Flag{o.playbook.guard.namespaceFlag()}, o.flags()),
		Action: o.serve,
	}
}

func (o *serveOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagListen, Value: serve.DefaultListen, Destination: &o.listen, Usage: "address to listen on"},
		&cli.StringFlag{Name: flagTokenFile, Destination: &o.tokenFile, Usage: "file holding the bearer token senders must present (Falcosidekick: webhook.customheaders)", EnvVars: envVars("KIR_TOKEN_FILE")},
		&cli.StringFlag{Name: flagTLSCert, Destination: &o.tlsCert, Usage: "TLS certificate (PEM); with --tls-key, kir serve speaks HTTPS (TLS 1.2 or later)"},
		&cli.StringFlag{Name: flagTLSKey, Destination: &o.tlsKey, Usage: "TLS private key (PEM)"},
		&cli.StringFlag{Name: flagClientCA, Destination: &o.clientCA, Usage: "CA bundle (PEM) that verifies client certificates (mutual TLS: Falco's http_output); a verified client needs no token"},
		&cli.BoolFlag{Name: flagRequireCert, Destination: &o.requireCert, Usage: "refuse TLS connections without a verified client certificate"},
		&cli.StringFlag{Name: flagHMACFile, Destination: &o.hmacFile, Usage: "file holding a shared secret: every request must carry X-Kir-Timestamp and X-Kir-Signature (HMAC-SHA256 over timestamp.body)"},
		&cli.StringFlag{Name: flagConfig, Destination: &o.config, Usage: "routing rules (YAML, kind Routing); default: Critical and above with a pod → contain-pod", EnvVars: envVars("KIR_SERVE_CONFIG")},
		signingKeyFlag(&o.key, "private key that signs the evidence of the runs (passed as the playbooks' key parameter)"),
		&cli.IntFlag{Name: flagWorkers, Value: serve.DefaultWorkers, Destination: &o.workers, Usage: "playbook runs at once"},
		&cli.IntFlag{Name: flagQueue, Value: serve.DefaultQueue, Destination: &o.queue, Usage: "routed alerts that may wait for a worker before 503"},
		&cli.IntFlag{Name: flagCollectors, Value: serve.DefaultCollectors, Destination: &o.collectors, Usage: "evidence collections at once across all runs (isolation never waits for them)"},
		&cli.Int64Flag{Name: flagBodyLimit, Value: serve.DefaultBodyLimit, Destination: &o.bodyLimit, Usage: "largest request body, in bytes (413 above)"},
		&cli.StringFlag{Name: flagIdentity, Destination: &o.identity, Usage: "this replica's name in claims (default: the host name; in Kubernetes, the pod's)", EnvVars: envVars("KIR_IDENTITY", "POD_NAME")},
		&cli.StringFlag{Name: flagLeaseNS, Destination: &o.leaseNamespace, Usage: "namespace of the claim Leases (default: the kubeconfig's namespace)", EnvVars: envVars("POD_NAMESPACE")},
		&cli.DurationFlag{Name: flagLeaseTime, Value: serve.DefaultLease, Destination: &o.leaseDuration, Usage: "how long a replica's claim lives unrenewed before another takes the work over"},
		&cli.BoolFlag{Name: flagNoClaims, Destination: &o.noClaims, Usage: "deduplicate within this process only (a single replica): no Leases"},
		&cli.IntFlag{Name: "budget-pods", Value: budget.DefaultConfig().Pods, Destination: &o.budget.Pods, Usage: "at most this many pods contained per --budget-window, across every replica; a run past it is held until a person approves it (kir runs approve)"},
		&cli.IntFlag{Name: "budget-nodes", Value: budget.DefaultConfig().Nodes, Destination: &o.budget.Nodes, Usage: "at most this many nodes cordoned per --budget-window (and never more than --budget-node-share of the Ready ones)"},
		&cli.DurationFlag{Name: "budget-window", Value: budget.DefaultConfig().Window, Destination: &o.budget.Window, Usage: "the budget's window"},
		&cli.Float64Flag{Name: "budget-node-share", Value: budget.DefaultConfig().MaxNodeShare, Destination: &o.budget.MaxNodeShare, Usage: "never cordon more than this share of the Ready nodes (rounded down)"},
		&cli.BoolFlag{Name: "no-budget", Destination: &o.noBudget, Usage: "no budget: kir contains whatever its routes say, however many (and kir runs pause does not hold it)"},
		&cli.DurationFlag{Name: "hold-for", Value: serve.DefaultHoldFor, Destination: &o.holdFor, Usage: "how long a held run (over the budget, paused, or at a step that needs approval) waits for kir runs approve or deny before it ends Expired"},
		&cli.BoolFlag{Name: flagNoRecords, Destination: &o.noRecords, Usage: "keep no response records (responses.kir.dev, in the claims' namespace): an accepted alert then lives in this replica's spool only, and no other replica takes it over"},
		&cli.BoolFlag{Name: "no-tamper", Destination: &o.noTamper, Usage: "run no tamper guard: a quarantine label removed, or kir's policy deleted or opened, stays so (the guard restores them within seconds, one replica at a time, by the Lease kir-tamper in kir's namespace)"},
		&cli.DurationFlag{Name: flagShutdownWait, Value: serve.DefaultShutdownTimeout, Destination: &o.shutdownTimeout, Usage: "on SIGTERM, how long running playbooks may finish before kir stops them (the next start resumes them)"},
	}
}

// serve is kir serve: flags → serve.Options → serve.Run.
func (o *serveOptions) serve(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("kir serve takes no arguments, got %q", c.Args().First())}
	}
	so, err := o.options(c)
	if err != nil {
		return err
	}
	return serve.Run(c.Context, so)
}

// options reads the credentials and the routing the flags name, and
// connects to the cluster.
func (o *serveOptions) options(c *cli.Context) (serve.Options, error) {
	if !o.noBudget {
		if err := o.budget.Validate(); err != nil {
			return serve.Options{}, usageError{err}
		}
	}
	auth, tlsCfg, err := o.auth()
	if err != nil {
		return serve.Options{}, err
	}
	routing, lib, err := loadRouting(o.config, &o.playbook)
	if err != nil {
		return serve.Options{}, err
	}
	s, err := online(c, &o.kube, &writeOptions{}, givenIncident)
	if err != nil {
		return serve.Options{}, err
	}
	eng, err := o.playbook.state.engine()
	if err != nil {
		return serve.Options{}, err
	}
	state, err := o.playbook.state.path()
	if err != nil {
		return serve.Options{}, err
	}
	env := s.env
	env.KirNamespace = o.playbook.guard.namespace
	return serve.Options{
		Listen: o.listen, TLS: tlsCfg, Auth: auth, Routing: routing, Library: lib, Key: absPath(o.key),
		Engine: *eng, Env: env, SpoolDir: filepath.Join(state, "spool"), Claims: o.claims(s), Records: o.records(s), Budget: o.budgetOf(s), Guard: o.playbook.guard.guard(),
		Workers: o.workers, Queue: o.queue, Collectors: o.collectors, BodyLimit: o.bodyLimit,
		ShutdownTimeout: o.shutdownTimeout, MemoryLimit: serveMemoryLimit(),
		Tamper: o.tamper(), Log: slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)),
	}, nil
}

// tamper is the guard of kir's quarantines, in kir's namespace; nil with
// --no-tamper.
func (o *serveOptions) tamper() *tamper.Options {
	if o.noTamper {
		return nil
	}
	return &tamper.Options{Namespace: o.playbook.guard.namespace, Identity: o.identity}
}

// serveMemoryLimit is serve.DefaultMemoryLimit, unless GOMEMLIMIT gives
// the Go runtime a limit (or none, with off) of its own.
func serveMemoryLimit() int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	return serve.DefaultMemoryLimit
}

// claims are the Leases that give each key to one replica; nil with
// --no-claims.
func (o *serveOptions) claims(s *session) *serve.Claims {
	if o.noClaims {
		return nil
	}
	id := o.identity
	if id == "" {
		id, _ = os.Hostname()
	}
	return &serve.Claims{Client: s.env.Kube, Namespace: s.namespace(o.leaseNamespace), Identity: id, Duration: o.leaseDuration, Now: time.Now}
}

// records are the response records, beside the claims; nil with
// --no-records or --no-claims.
func (o *serveOptions) records(s *session) *serve.Records {
	c := o.claims(s)
	if c == nil || o.noRecords {
		return nil
	}
	return &serve.Records{Store: record.NewStore(s.env.Kube, c.Namespace), Kube: s.env.Kube, Identity: c.Identity, ClaimFor: o.leaseDuration, HoldFor: o.holdFor}
}

// budgetOf is the installation's budget, beside the claims (kir's
// namespace without them); nil with --no-budget.
func (o *serveOptions) budgetOf(s *session) *budget.Budget {
	if o.noBudget {
		return nil
	}
	ns := o.playbook.guard.namespace
	if c := o.claims(s); c != nil {
		ns = c.Namespace
	}
	return &budget.Budget{Client: s.env.Kube, Namespace: ns, Config: o.budget}
}

// auth reads the intake credentials: a token, client CAs, or both; at
// least one. With a certificate and key, it also returns the TLS config.
func (o *serveOptions) auth() (*serve.Auth, *tls.Config, error) {
	auth := &serve.Auth{}
	var err error
	if o.tokenFile != "" {
		if auth.Token, err = serve.ReadSecretFile(o.tokenFile); err != nil {
			return nil, nil, usageError{fmt.Errorf("--token-file: %w", err)}
		}
	}
	if o.hmacFile != "" {
		if auth.HMACSecret, err = serve.ReadSecretFile(o.hmacFile); err != nil {
			return nil, nil, usageError{fmt.Errorf("--hmac-secret-file: %w", err)}
		}
	}
	if o.clientCA != "" {
		if auth.ClientCAs, err = serve.LoadCAs(o.clientCA); err != nil {
			return nil, nil, usageError{fmt.Errorf("--client-ca: %w", err)}
		}
	}
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return nil, nil, usageError{errors.New("give both --tls-cert and --tls-key")}
	case (auth.ClientCAs != nil || o.requireCert) && o.tlsCert == "":
		return nil, nil, usageError{errors.New("--client-ca and --require-client-cert need --tls-cert and --tls-key")}
	case o.requireCert && auth.ClientCAs == nil:
		return nil, nil, usageError{errors.New("--require-client-cert needs --client-ca to verify the certificates")}
	case auth.Token == nil && auth.ClientCAs == nil:
		return nil, nil, usageError{errors.New("give --token-file or --client-ca: kir serve never accepts alerts without authentication")}
	}
	if o.tlsCert == "" {
		return auth, nil, nil
	}
	cfg, err := serve.TLSConfig(o.tlsCert, o.tlsKey, auth.ClientCAs, o.requireCert)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return auth, cfg, nil
}

// loadRouting loads the routing rules (the file config, else the built-in
// routing) and the playbook library, and checks that every rule names a
// playbook that takes its parameters. kir serve and kir falco replay
// share it.
func loadRouting(config string, pb *playbookOptions) (*falco.Config, *playbooks.Library, error) {
	routing := falco.DefaultConfig()
	if config != "" {
		var err error
		if routing, err = falco.LoadConfig(config); err != nil {
			return nil, nil, usageError{err}
		}
	}
	lib, err := pb.library()
	if err != nil {
		return nil, nil, err
	}
	if err := serve.CheckRouting(routing, lib); err != nil {
		return nil, nil, usageError{err}
	}
	return routing, lib, nil
}
