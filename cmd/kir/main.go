// Command kir responds to a compromised Kubernetes cluster.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kir.dev/kir/cmd/kir/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
