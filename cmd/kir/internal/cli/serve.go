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

	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/serve"
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
	flagShutdownWait = "shutdown-timeout"
)

// serveFlags are kir serve's own flags; the connection and playbook flags
// are the shared ones.
type serveFlags struct {
	listen, tokenFile, hmacFile    string
	tlsCert, tlsKey, clientCA      string
	requireCert                    bool
	key                            string
	workers, queue, collectors     int
	bodyLimit                      int64
	identity, leaseNamespace       string
	leaseDuration, shutdownTimeout time.Duration
	noClaims                       bool
}

func serveCommand() *cli.Command {
	f := &serveFlags{}
	return &cli.Command{
		Name:  "serve",
		Usage: "receive Falco and Falcosidekick alerts over an authenticated webhook and run the playbooks they route to",
		Description: "Alerts are accepted by POST at / and /falco. Each is written to a durable spool before the 202;\n" +
			"a full queue answers 503 with Retry-After. Alerts are deduplicated by key (default: playbook,\n" +
			"namespace and pod) within a window, across replicas through a Lease per key. Without --config,\n" +
			"an alert of priority Critical or higher naming k8s.ns.name and k8s.pod.name runs contain-pod on\n" +
			"that pod. /healthz, /readyz and /metrics (Prometheus) are served on the same address.",
		Flags:  flagsOf(kubeFlags(), playbookFlags(), f.flags()),
		Action: f.run,
	}
}

func (f *serveFlags) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagListen, Value: serve.DefaultListen, Destination: &f.listen, Usage: "address to listen on"},
		&cli.StringFlag{Name: flagTokenFile, Destination: &f.tokenFile, Usage: "file holding the bearer token senders must present (Falcosidekick: webhook.customheaders)", EnvVars: []string{"KIR_TOKEN_FILE"}},
		&cli.StringFlag{Name: flagTLSCert, Destination: &f.tlsCert, Usage: "TLS certificate (PEM); with --tls-key, kir serve speaks HTTPS (TLS 1.2 or later)"},
		&cli.StringFlag{Name: flagTLSKey, Destination: &f.tlsKey, Usage: "TLS private key (PEM)"},
		&cli.StringFlag{Name: flagClientCA, Destination: &f.clientCA, Usage: "CA bundle (PEM) that verifies client certificates (mutual TLS: Falco's http_output); a verified client needs no token"},
		&cli.BoolFlag{Name: flagRequireCert, Destination: &f.requireCert, Usage: "refuse TLS connections without a verified client certificate"},
		&cli.StringFlag{Name: flagHMACFile, Destination: &f.hmacFile, Usage: "file holding a shared secret: every request must carry X-Kir-Timestamp and X-Kir-Signature (HMAC-SHA256 over timestamp.body)"},
		&cli.StringFlag{Name: flagConfig, Usage: "routing rules (YAML, kind Routing); default: Critical and above with a pod → contain-pod", EnvVars: []string{"KIR_SERVE_CONFIG"}},
		&cli.StringFlag{Name: flagKey, Destination: &f.key, Usage: "private key that signs the evidence of the runs (passed as the playbooks' key parameter)", EnvVars: []string{"KIR_SIGNING_KEY"}},
		&cli.IntFlag{Name: flagWorkers, Value: serve.DefaultWorkers, Destination: &f.workers, Usage: "playbook runs at once"},
		&cli.IntFlag{Name: flagQueue, Value: serve.DefaultQueue, Destination: &f.queue, Usage: "routed alerts that may wait for a worker before 503"},
		&cli.IntFlag{Name: flagCollectors, Value: serve.DefaultCollectors, Destination: &f.collectors, Usage: "evidence collections at once across all runs (isolation never waits for them)"},
		&cli.Int64Flag{Name: flagBodyLimit, Value: serve.DefaultBodyLimit, Destination: &f.bodyLimit, Usage: "largest request body, in bytes (413 above)"},
		&cli.StringFlag{Name: flagIdentity, Destination: &f.identity, Usage: "this replica's name in claims (default: the host name; in Kubernetes, the pod's)", EnvVars: []string{"KIR_IDENTITY", "POD_NAME"}},
		&cli.StringFlag{Name: flagLeaseNS, Destination: &f.leaseNamespace, Usage: "namespace of the claim Leases (default: the kubeconfig's namespace)", EnvVars: []string{"POD_NAMESPACE"}},
		&cli.DurationFlag{Name: flagLeaseTime, Value: serve.DefaultLease, Destination: &f.leaseDuration, Usage: "how long a replica's claim lives unrenewed before another takes the work over"},
		&cli.BoolFlag{Name: flagNoClaims, Destination: &f.noClaims, Usage: "deduplicate within this process only (a single replica): no Leases"},
		&cli.DurationFlag{Name: flagShutdownWait, Value: serve.DefaultShutdownTimeout, Destination: &f.shutdownTimeout, Usage: "on SIGTERM, how long running playbooks may finish before kir stops them (the next start resumes them)"},
	}
}

// run is kir serve: flags → serve.Options → serve.Run.
func (f *serveFlags) run(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("kir serve takes no arguments, got %q", c.Args().First())}
	}
	o, err := f.options(c)
	if err != nil {
		return err
	}
	return serve.Run(c.Context, o)
}

// options reads the flags, the credentials and the routing they name, and
// connects to the cluster.
func (f *serveFlags) options(c *cli.Context) (serve.Options, error) {
	auth, tlsCfg, err := f.auth()
	if err != nil {
		return serve.Options{}, err
	}
	routing, lib, err := loadRouting(c)
	if err != nil {
		return serve.Options{}, err
	}
	s, err := connect(c.Context, c, false)
	if err != nil {
		return serve.Options{}, err
	}
	eng, err := newEngine(c)
	if err != nil {
		return serve.Options{}, err
	}
	state, err := stateDir(c)
	if err != nil {
		return serve.Options{}, err
	}
	return serve.Options{
		Listen: f.listen, TLS: tlsCfg, Auth: auth, Routing: routing, Library: lib,
		Engine: *eng, Env: s.env, SpoolDir: filepath.Join(state, "spool"), Claims: f.claims(s),
		Key:     absPath(f.key),
		Workers: f.workers, Queue: f.queue, Collectors: f.collectors, BodyLimit: f.bodyLimit,
		ShutdownTimeout: f.shutdownTimeout, MemoryLimit: serveMemoryLimit(),
		Log: slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)),
	}, nil
}

// serveMemoryLimit is serve.DefaultMemoryLimit, unless GOMEMLIMIT gives
// the Go runtime a limit (or none, with off) of its own.
func serveMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	return serve.DefaultMemoryLimit
}

// claims are the Leases that give each key to one replica; nil with
// --no-claims.
func (f *serveFlags) claims(s *session) *serve.Claims {
	if f.noClaims {
		return nil
	}
	ns := f.leaseNamespace
	if ns == "" {
		ns = s.client.Namespace
	}
	id := f.identity
	if id == "" {
		id, _ = os.Hostname()
	}
	return &serve.Claims{Client: s.env.Kube, Namespace: ns, Identity: id, Duration: f.leaseDuration, Now: time.Now}
}

// auth reads the intake credentials: a token, client CAs, or both; at
// least one. With a certificate and key, it also returns the TLS config.
func (f *serveFlags) auth() (*serve.Auth, *tls.Config, error) {
	auth := &serve.Auth{}
	var err error
	if f.tokenFile != "" {
		if auth.Token, err = serve.ReadSecretFile(f.tokenFile); err != nil {
			return nil, nil, usageError{fmt.Errorf("--token-file: %w", err)}
		}
	}
	if f.hmacFile != "" {
		if auth.HMACSecret, err = serve.ReadSecretFile(f.hmacFile); err != nil {
			return nil, nil, usageError{fmt.Errorf("--hmac-secret-file: %w", err)}
		}
	}
	if f.clientCA != "" {
		if auth.ClientCAs, err = serve.LoadCAs(f.clientCA); err != nil {
			return nil, nil, usageError{fmt.Errorf("--client-ca: %w", err)}
		}
	}
	switch {
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return nil, nil, usageError{errors.New("give both --tls-cert and --tls-key")}
	case (auth.ClientCAs != nil || f.requireCert) && f.tlsCert == "":
		return nil, nil, usageError{errors.New("--client-ca and --require-client-cert need --tls-cert and --tls-key")}
	case f.requireCert && auth.ClientCAs == nil:
		return nil, nil, usageError{errors.New("--require-client-cert needs --client-ca to verify the certificates")}
	case auth.Token == nil && auth.ClientCAs == nil:
		return nil, nil, usageError{errors.New("give --token-file or --client-ca: kir serve never accepts alerts without authentication")}
	}
	if f.tlsCert == "" {
		return auth, nil, nil
	}
	cfg, err := serve.TLSConfig(f.tlsCert, f.tlsKey, auth.ClientCAs, f.requireCert)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return auth, cfg, nil
}

// loadRouting loads the routing rules (--config, else the built-in
// routing) and the playbook library, and checks that every rule names a
// playbook that takes its parameters. kir serve and kir falco replay
// share it.
func loadRouting(c *cli.Context) (*falco.Config, *playbooks.Library, error) {
	routing := falco.DefaultConfig()
	if path := c.String(flagConfig); path != "" {
		var err error
		if routing, err = falco.LoadConfig(path); err != nil {
			return nil, nil, usageError{err}
		}
	}
	lib, err := library(c)
	if err != nil {
		return nil, nil, err
	}
	if err := serve.CheckRouting(routing, lib); err != nil {
		return nil, nil, usageError{err}
	}
	return routing, lib, nil
}
