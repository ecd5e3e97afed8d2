package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/falco"
	"kir.dev/kir/internal/spool"
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

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "receive Falco and Falcosidekick alerts over an authenticated webhook and run the playbooks they route to",
		Description: "Alerts are accepted by POST at / and /falco. Each is written to a durable spool before the 202;\n" +
			"a full queue answers 503 with Retry-After. Alerts are deduplicated by key (default: playbook,\n" +
			"namespace and pod) within a window, across replicas through a Lease per key. Without --config,\n" +
			"an alert of priority Critical or higher naming k8s.ns.name and k8s.pod.name runs contain-pod on\n" +
			"that pod. /healthz, /readyz and /metrics (Prometheus) are served on the same address.",
		Flags: flagsOf(kubeFlags(), playbookFlags(), []cli.Flag{
			&cli.StringFlag{Name: flagListen, Value: "127.0.0.1:8765", Usage: "address to listen on"},
			&cli.StringFlag{Name: flagTokenFile, Usage: "file holding the bearer token senders must present (Falcosidekick: webhook.customheaders)", EnvVars: []string{"KIR_TOKEN_FILE"}},
			&cli.StringFlag{Name: flagTLSCert, Usage: "TLS certificate (PEM); with --tls-key, kir serve speaks HTTPS (TLS 1.2 or later)"},
			&cli.StringFlag{Name: flagTLSKey, Usage: "TLS private key (PEM)"},
			&cli.StringFlag{Name: flagClientCA, Usage: "CA bundle (PEM) that verifies client certificates (mutual TLS: Falco's http_output); a verified client needs no token"},
			&cli.BoolFlag{Name: flagRequireCert, Usage: "refuse TLS connections without a verified client certificate"},
			&cli.StringFlag{Name: flagHMACFile, Usage: "file holding a shared secret: every request must carry X-Kir-Timestamp and X-Kir-Signature (HMAC-SHA256 over timestamp.body)"},
			&cli.StringFlag{Name: flagConfig, Usage: "routing rules (YAML, kind Routing); default: Critical and above with a pod → contain-pod", EnvVars: []string{"KIR_SERVE_CONFIG"}},
			&cli.StringFlag{Name: flagKey, Usage: "private key that signs the evidence of the runs (passed as the playbooks' key parameter)", EnvVars: []string{"KIR_SIGNING_KEY"}},
			&cli.IntFlag{Name: flagWorkers, Value: serve.DefaultWorkers, Usage: "playbook runs at once"},
			&cli.IntFlag{Name: flagQueue, Value: serve.DefaultQueue, Usage: "routed alerts that may wait for a worker before 503"},
			&cli.IntFlag{Name: flagCollectors, Value: serve.DefaultCollectors, Usage: "evidence collections at once across all runs (isolation never waits for them)"},
			&cli.Int64Flag{Name: flagBodyLimit, Value: serve.DefaultBodyLimit, Usage: "largest request body, in bytes (413 above)"},
			&cli.StringFlag{Name: flagIdentity, Usage: "this replica's name in claims (default: the host name; in Kubernetes, the pod's)", EnvVars: []string{"KIR_IDENTITY", "POD_NAME"}},
			&cli.StringFlag{Name: flagLeaseNS, Usage: "namespace of the claim Leases (default: the kubeconfig's namespace)", EnvVars: []string{"POD_NAMESPACE"}},
			&cli.DurationFlag{Name: flagLeaseTime, Value: serve.DefaultLease, Usage: "how long a replica's claim lives unrenewed before another takes the work over"},
			&cli.BoolFlag{Name: flagNoClaims, Usage: "deduplicate within this process only (a single replica): no Leases"},
			&cli.DurationFlag{Name: flagShutdownWait, Value: 20 * time.Second, Usage: "on SIGTERM, how long running playbooks may finish before kir stops them (the next start resumes them)"},
		}),
		Action: runServe,
	}
}

// serveMemoryLimit is kir serve's soft memory limit unless GOMEMLIMIT
// sets one: the Go heap and runtime, not the binary's pages. With it, a
// storm of 10,000 alerts peaks at ~85 MiB resident (make bench), under the
// Deployment's request.
const serveMemoryLimit = 48 << 20

func runServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("kir serve takes no arguments, got %q", c.Args().First())}
	}
	log := slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil))
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the garbage collector works harder near it, so
		// that an alert storm does not balloon the receiver.
		debug.SetMemoryLimit(serveMemoryLimit)
	}
	auth, tlsCfg, err := serveAuth(c)
	if err != nil {
		return err
	}
	routing, lib, err := loadRouting(c)
	if err != nil {
		return err
	}
	s, err := connect(c.Context, c, false)
	if err != nil {
		return err
	}
	eng, err := newEngine(c)
	if err != nil {
		return err
	}
	state, err := stateDir(c)
	if err != nil {
		return err
	}
	sp, pending, err := spool.Open(filepath.Join(state, "spool"), spool.WithLogger(log))
	if err != nil {
		return err
	}
	defer sp.Close()

	var claims *serve.Claims
	if !c.Bool(flagNoClaims) {
		ns := c.String(flagLeaseNS)
		if ns == "" {
			ns = s.client.Namespace
		}
		id := c.String(flagIdentity)
		if id == "" {
			id, _ = os.Hostname()
		}
		claims = &serve.Claims{Client: s.env.Kube, Namespace: ns, Identity: id, Duration: c.Duration(flagLeaseTime), Now: time.Now}
	}
	env := s.env
	env.Progress = nil
	srv, err := serve.New(serve.Options{
		Auth: auth, Routing: routing, Library: lib, Engine: eng, Env: env,
		Spool: sp, Pending: pending, Claims: claims, Key: absPath(c.String(flagKey)),
		Workers: c.Int(flagWorkers), Queue: c.Int(flagQueue), Collectors: c.Int(flagCollectors), BodyLimit: c.Int64(flagBodyLimit),
		Log: log,
	})
	if err != nil {
		return usageError{err}
	}
	ln, err := net.Listen("tcp", c.String(flagListen))
	if err != nil {
		return err
	}
	if tlsCfg == nil && !isLoopback(ln.Addr()) {
		log.Warn("serving plain HTTP on a non-loopback address: alerts and the token cross the network in clear; give --tls-cert and --tls-key")
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	work, stopWork := context.WithCancel(context.WithoutCancel(c.Context))
	defer stopWork()
	srv.Start(work)
	log.Info("kir serve listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "pending", len(pending), "claims", claims != nil, "version", Version)
	served := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		stopWork()
		srv.Wait()
		return err
	case <-c.Context.Done():
	}
	log.Info("stopping: no new alerts; running playbooks may finish", "timeout", c.Duration(flagShutdownWait))
	shutdown, cancel := context.WithTimeout(context.Background(), c.Duration(flagShutdownWait))
	defer cancel()
	_ = hs.Shutdown(shutdown)
	srv.Drain(shutdown)
	stopWork()
	srv.Wait()
	log.Info("stopped")
	return nil
}

// serveAuth reads the intake credentials: a token, client CAs, or both;
// at least one.
func serveAuth(c *cli.Context) (*serve.Auth, *tls.Config, error) {
	auth := &serve.Auth{}
	var err error
	if path := c.String(flagTokenFile); path != "" {
		if auth.Token, err = serve.ReadSecretFile(path); err != nil {
			return nil, nil, usageError{fmt.Errorf("--token-file: %w", err)}
		}
	}
	if path := c.String(flagHMACFile); path != "" {
		if auth.HMACSecret, err = serve.ReadSecretFile(path); err != nil {
			return nil, nil, usageError{fmt.Errorf("--hmac-secret-file: %w", err)}
		}
	}
	if path := c.String(flagClientCA); path != "" {
		if auth.ClientCAs, err = serve.LoadCAs(path); err != nil {
			return nil, nil, usageError{fmt.Errorf("--client-ca: %w", err)}
		}
	}
	cert, key := c.String(flagTLSCert), c.String(flagTLSKey)
	switch {
	case (cert == "") != (key == ""):
		return nil, nil, usageError{errors.New("give both --tls-cert and --tls-key")}
	case (auth.ClientCAs != nil || c.Bool(flagRequireCert)) && cert == "":
		return nil, nil, usageError{errors.New("--client-ca and --require-client-cert need --tls-cert and --tls-key")}
	case c.Bool(flagRequireCert) && auth.ClientCAs == nil:
		return nil, nil, usageError{errors.New("--require-client-cert needs --client-ca to verify the certificates")}
	case auth.Token == nil && auth.ClientCAs == nil:
		return nil, nil, usageError{errors.New("give --token-file or --client-ca: kir serve never accepts alerts without authentication")}
	}
	if cert == "" {
		return auth, nil, nil
	}
	cfg, err := serve.TLSConfig(cert, key, auth.ClientCAs, c.Bool(flagRequireCert))
	if err != nil {
		return nil, nil, usageError{err}
	}
	return auth, cfg, nil
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// loadRouting loads the routing rules (--config, else the built-in
// routing) and the playbook library, and checks that every rule names a
// playbook that takes its parameters.
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
	if err := checkRoutes(routing, lib); err != nil {
		return nil, nil, usageError{err}
	}
	return routing, lib, nil
}

// checkRoutes reports, at the routing config's positions, every rule
// whose playbook does not exist or does not take one of its parameters.
func checkRoutes(routing *falco.Config, lib *playbooks.Library) error {
	return routing.Check(func(r *falco.Rule) error {
		e, ok := lib.Get(r.Playbook)
		if !ok {
			return fmt.Errorf("no playbook named %s (have: %s)", r.Playbook, strings.Join(lib.Names(), ", "))
		}
		var unknown []string
		for _, name := range r.ParamNames() {
			if !e.Playbook.Takes(name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("playbook %s takes no parameter %s", r.Playbook, strings.Join(unknown, ", "))
		}
		return nil
	})
}
