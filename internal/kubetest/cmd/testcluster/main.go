// Command testcluster runs a kubetest cluster until it is interrupted, for
// demos and manual testing:
//
//	testcluster --kubeconfig-out FILE [--nodes N] [-v]
//
// It starts the control plane, adds N kwok nodes (kir-demo-node-1, …),
// writes an admin kubeconfig to FILE, prints "ready" on stdout and runs
// until SIGINT or SIGTERM, or until its parent exits. A second signal kills
// it at once; its servers die with it.
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
	verbose := fs.Bool("v", false, "copy the components' logs to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 || *nodes < 0 {
		fs.Usage()
		return errors.New("usage: testcluster --kubeconfig-out FILE [--nodes N] [-v]")
	}

	opts := kubetest.Options{}
	if *verbose {
		opts.Log = stderr
	}
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
	fmt.Fprintln(stdout, "ready")

	<-ctx.Done()
	release()
	fmt.Fprintln(stderr, "stopping")
	return nil
}
