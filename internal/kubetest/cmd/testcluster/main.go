// Command testcluster runs a kubetest cluster until it is interrupted, for
// demos and manual testing:
//
//	testcluster --kubeconfig-out FILE [--nodes N] [--app-namespace NS] [-v]
//
// It starts the control plane, adds N kwok nodes (kir-demo-node-1, …),
// writes an admin kubeconfig to FILE and runs until SIGINT or SIGTERM, or
// until its parent exits. A second signal kills it at once; its servers die
// with it.
//
// Alongside the cluster it runs an OCI registry (in memory, plain HTTP on
// 127.0.0.1), for the demo app's image. kwok plays a kubelet that has run
// the demo app for a while: every container of the pods in namespace NS
// (default shop) serves a web server's access log, with an attack in it,
// and the log of a crash as its previous log; pods annotated
// kubetest.ImageIDAnnotation report that image ID and one restart.
//
// Once the cluster is ready it prints on stdout:
//
//	registry 127.0.0.1:PORT
//	ready
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"kir.dev/kir/internal/kubetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := termWithParent()
	if err == nil {
		err = run(ctx, stop, os.Args[1:], os.Stdout, os.Stderr)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "testcluster:", err)
		os.Exit(1)
	}
}

// termWithParent asks the kernel for a SIGTERM when the parent exits: `go
// run` does not pass on a SIGTERM sent to it, and the cluster must not
// outlive it.
func termWithParent() error {
	const prSetPdeathsig = 1
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetPdeathsig, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return fmt.Errorf("setting the parent death signal: %w", errno)
	}
	return nil
}

// run starts the cluster and blocks until ctx ends; release is called then,
// so that a second signal is not caught.
func run(ctx context.Context, release func(), args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("kubeconfig-out", "", "write the admin kubeconfig to this `file` (required)")
	nodes := fs.Int("nodes", 1, "number of kwok nodes to add")
	appNS := fs.String("app-namespace", "shop", "containers of the pods in this `namespace` serve the demo app's logs")
	verbose := fs.Bool("v", false, "copy the components' and the registry's logs to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 || *nodes < 0 || *appNS == "" {
		fs.Usage()
		return errors.New("usage: testcluster --kubeconfig-out FILE [--nodes N] [--app-namespace NS] [-v]")
	}

	logDir, err := os.MkdirTemp("", "testcluster-logs-")
	if err != nil {
		return fmt.Errorf("creating a directory for the demo app's logs: %w", err)
	}
	defer os.RemoveAll(logDir)
	logs, err := appLogs(logDir, *appNS, time.Now())
	if err != nil {
		return err
	}
	stages, err := kubetest.ImageIDStages()
	if err != nil {
		return err
	}
	opts := kubetest.Options{ExtraKwokConfig: append(stages, logs)}
	registryLog := io.Discard
	if *verbose {
		opts.Log = stderr
		registryLog = stderr
	}
	reg, err := startRegistry(registryLog)
	if err != nil {
		return err
	}
	defer reg.close()
	c, err := kubetest.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Stop()
	for i := 1; i <= *nodes; i++ {
		if _, err := c.AddNode(ctx, fmt.Sprintf("kir-demo-node-%d", i)); err != nil {
			return err
		}
	}
	if err := c.WriteKubeconfig(*out, c.Config); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cluster at %s, logs in %s\n", c.Config.Host, c.Dir)
	fmt.Fprintf(stdout, "registry %s\n", reg.addr)
	fmt.Fprintln(stdout, "ready")

	select {
	case <-ctx.Done():
	case err = <-reg.done:
	}
	release()
	fmt.Fprintln(stderr, "stopping")
	return err
}
