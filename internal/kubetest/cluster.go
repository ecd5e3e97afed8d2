package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	apiserverTimeout = 60 * time.Second
	// componentTimeout bounds the wait for the controller-manager, the
	// scheduler and kwok, which start once the apiserver is ready.
	componentTimeout = 30 * time.Second
	// stopGrace is how long a process has between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
	// logTailLines is how much of each log Logs returns.
	logTailLines = 60
)

// Options configures Start. The zero value runs every component.
type Options struct {
	// NoControllerManager skips kube-controller-manager: no Deployments,
	// garbage collection or CSR signing. Namespace then creates the
	// default ServiceAccount itself.
	NoControllerManager bool
	// ControllerIdentities runs each controller of kube-controller-manager
	// as its own ServiceAccount (kube-system:generic-garbage-collector,
	// kube-system:namespace-controller, …), as real clusters do, rather
	// than as the admin: for admission policies that exempt them by name.
	ControllerIdentities bool
	// NoScheduler skips kube-scheduler: pods stay Pending unless they set
	// spec.nodeName.
	NoScheduler bool
	// APIServerFlags are appended to kube-apiserver's command line.
	APIServerFlags []string
	// ExtraKwokConfig are YAML documents (a custom Stage, …) appended to
	// kwok's configuration after its default stages.
	ExtraKwokConfig [][]byte
	// ImageIDs adds kir's image-ID stages (ImageIDStages): pods annotated
	// with ImageIDAnnotation get that image ID in their container statuses.
	ImageIDs bool
	// PodLogs are what kwok serves as container logs, the first entry
	// whose Containers names the container (or that names none) winning.
	// Without them pods/log answers an error.
	PodLogs []PodLogs
	// AuditLog makes the API server write an audit log (level Metadata,
	// JSON lines) to Cluster.AuditLog.
	AuditLog bool
	// Setup, when set, is called by Start once the cluster is ready, for
	// what a package's tests share beside it (a client, a registry); an
	// error fails Start. The function it returns (nil: none) is called by
	// Stop before the processes stop.
	Setup func(ctx context.Context, c *Cluster) (cleanup func(), err error)
	// RealNode also starts a real node (Cluster.Node): kubelet, containerd
	// and kube-router on this machine, as root, one per machine. Check
	// RealNodePrerequisites (or RequireRealNode) first.
	RealNode bool
	// Log receives the output of every process, each line prefixed with
	// the process name. Nil keeps it to the files in Dir only.
	Log io.Writer
}

// Cluster is a running control plane. Stop it when done.
type Cluster struct {
	// Config authenticates as an administrator (group system:masters).
	Config *rest.Config
	// Client is an admin client built from Config.
	Client kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig file, for running
	// binaries against the cluster.
	Kubeconfig string
	// Dir holds the logs (<process>.log), certificates and data.
	Dir string
	// AuditLog is the API server's audit log when Options.AuditLog is set.
	AuditLog string
	// Node is the real node when Options.RealNode is set.
	Node *Node

	noControllerManager bool
	cleanup             func() // from Options.Setup
	launcher            *launcher
	procs               []*process
	stopOnce            sync.Once
}

// errPortTaken is returned by start when a process could not bind its port:
// free ports are found before the processes bind them, and another process
// may take one in between.
var errPortTaken = errors.New("port taken before the component bound it")

// startAttempts bounds the retries of a start that lost a port.
const startAttempts = 3

// Start starts a cluster and returns once its apiserver is ready and every
// other component answers its health check. On failure it stops what it
// started and the error carries the tail of every log. ctx bounds the start
// only: the cluster runs until Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, opts)
		if err == nil || attempt == startAttempts || !errors.Is(err, errPortTaken) {
			return c, err
		}
	}
}

func start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	names := []string{etcdName, apiserverName, kwokName}
	if !opts.NoControllerManager {
		names = append(names, controllerManagerName)
	}
	if !opts.NoScheduler {
		names = append(names, schedulerName)
	}
	bins, err := findBinaries(names...)
	if err != nil {
		return nil, err
	}
	dir, err := makeDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, noControllerManager: opts.NoControllerManager, launcher: newLauncher()}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	k, err := writePKI(dir)
	if err != nil {
		return nil, err
	}
	pp, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	p := ports{etcdClient: pp[0], etcdPeer: pp[1], apiserver: pp[2], controllerManager: pp[3], scheduler: pp[4], kwok: pp[5]}

	c.Config = &rest.Config{
		Host:            localURL("https", p.apiserver),
		BearerToken:     k.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.servingCAData},
		QPS:             500,
		Burst:           1000,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, fmt.Errorf("creating admin client: %w", err)
	}
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.WriteKubeconfig(c.Kubeconfig, c.Config); err != nil {
		return nil, err
	}

	var mirror *lockedWriter
	if opts.Log != nil {
		mirror = &lockedWriter{w: opts.Log}
	}
	run := func(name string, args []string) error {
		proc, err := startProcess(c.launcher, dir, name, bins[name], args, mirror)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, proc)
		return nil
	}

	// The apiserver retries etcd until it answers: no need to wait for it.
	if err := run(etcdName, etcdArgs(dir, p)); err != nil {
		return nil, err
	}
	flags := opts.APIServerFlags
	if opts.AuditLog {
		if flags, err = c.auditFlags(flags); err != nil {
			return nil, err
		}
	}
	if err := run(apiserverName, apiserverArgs(p, k, flags)); err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, apiserverName, apiserverTimeout, func(ctx context.Context) error {
		return c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	}); err != nil {
		return nil, err
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(k.servingCAData)
	health := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer health.CloseIdleConnections()
	checks := map[string]int{kwokName: p.kwok}

	kwokConf := filepath.Join(dir, "kwok.yaml")
	extra, err := extraKwokConfig(dir, opts)
	if err != nil {
		return nil, err
	}
	conf, err := kwokConfig(extra)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(kwokConf, conf, 0o600); err != nil {
		return nil, fmt.Errorf("writing kwok config: %w", err)
	}
	if err := run(kwokName, kwokArgs(p, k, c.Kubeconfig, kwokConf)); err != nil {
		return nil, err
	}
	if !opts.NoControllerManager {
		args := controllerManagerArgs(p, k, c.Kubeconfig)
		if opts.ControllerIdentities {
			args = append(args, "--use-service-account-credentials=true") // the last one wins
		}
		if err := run(controllerManagerName, args); err != nil {
			return nil, err
		}
		checks[controllerManagerName] = p.controllerManager
	}
	if !opts.NoScheduler {
		schedConf := filepath.Join(dir, "scheduler.yaml")
		if err := os.WriteFile(schedConf, schedulerConfig(c.Kubeconfig), 0o600); err != nil {
			return nil, fmt.Errorf("writing scheduler config: %w", err)
		}
		if err := run(schedulerName, schedulerArgs(p, k, schedConf)); err != nil {
			return nil, err
		}
		checks[schedulerName] = p.scheduler
	}
	for name, port := range checks {
		if err := c.waitHealthy(ctx, name, componentTimeout, func(ctx context.Context) error {
			return httpGetOK(ctx, health, localURL("https", port)+"/healthz")
		}); err != nil {
			return nil, err
		}
	}
	if opts.RealNode {
		if c.Node, err = startNode(ctx, c, k, mirror); err != nil {
			return nil, fmt.Errorf("starting the real node: %w", err)
		}
	}
	if opts.Setup != nil {
		if c.cleanup, err = opts.Setup(ctx, c); err != nil {
			return nil, fmt.Errorf("setting up beside the cluster: %w", err)
		}
	}
	return c, nil
}

// waitHealthy polls check until it succeeds, failing early when any process
// exits.
func (c *Cluster) waitHealthy(ctx context.Context, name string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		last = check(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		for _, p := range c.procs {
			if !p.exited() {
				continue
			}
			err := fmt.Errorf("%s exited (%v) while waiting for %s to be healthy; logs follow (set KIR_TEST_KEEP=1 to keep %s)\n%s", p.name, p.exitError(), name, c.Dir, c.Logs())
			if log, _ := tail(p.logPath, logTailLines); strings.Contains(log, "address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be healthy: %w (last check: %v); logs follow (set KIR_TEST_KEEP=1 to keep %s)\n%s", name, ctx.Err(), last, c.Dir, c.Logs())
		case <-tick.C:
		}
	}
}

func httpGetOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// Stop stops every process: SIGTERM, then SIGKILL after a few seconds. It
// removes Dir unless KIR_TEST_KEEP=1. Calling it again does nothing.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		if c.cleanup != nil {
			c.cleanup()
		}
		if c.Node != nil {
			// Whatever is left on the host, the next start cleans again;
			// say so meanwhile.
			if err := c.Node.stop(); err != nil {
				fmt.Fprintf(os.Stderr, "kubetest: cleaning the host after the real node: %v\n", err)
			}
		}
		// etcd last: an apiserver that loses etcd first is slow to stop.
		var etcd, others []*process
		for _, p := range c.procs {
			if p.name == etcdName {
				etcd = append(etcd, p)
			} else {
				others = append(others, p)
			}
		}
		stopProcesses(others, stopGrace)
		stopProcesses(etcd, stopGrace)
		c.launcher.close()
		if !keep() {
			// Nothing to report to: a leftover directory is visible, and
			// the next Start sweeps it.
			_ = os.RemoveAll(c.Dir)
		}
	})
}

// Logs returns the last lines of every process's log, for failure messages.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, p := range c.procs {
		status := "running"
		if p.exited() {
			status = p.exitError().Error()
		}
		fmt.Fprintf(&b, "----- %s (%s), last %d lines of %s -----\n", p.name, status, logTailLines, p.logPath)
		text, err := tail(p.logPath, logTailLines)
		if err != nil {
			text = "(" + err.Error() + ")"
		}
		b.WriteString(text)
		b.WriteString("\n")
	}
	if c.Node != nil {
		b.WriteString(c.Node.Logs())
	}
	return b.String()
}

// pids returns the process IDs of the running processes, for tests.
func (c *Cluster) pids() map[string]int {
	pids := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		pids[p.name] = p.cmd.Process.Pid
	}
	return pids
}
