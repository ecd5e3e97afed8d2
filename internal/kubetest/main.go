package kubetest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the start of a shared control plane, Options.Setup
// included.
const startTimeout = 3 * time.Minute

// Main is the whole TestMain of a package whose tests share one control
// plane, started before them:
//
//	var cluster *kubetest.Cluster
//
//	func TestMain(m *testing.M) { kubetest.Main(m, &cluster, kubetest.Options{}) }
//
// It starts the cluster with o and points *cluster at it, runs the tests,
// prints the control plane's logs if any failed, stops the cluster (and
// the Vault of SharedVault, when a test started it) and exits with the
// tests' code. A cluster that does not start fails the package at once.
func Main(m *testing.M, cluster **Cluster, o Options) {
	if !flag.Parsed() {
		flag.Parse() // for -v, before m.Run parses them
	}
	s := &Shared{Options: o}
	if _, err := s.start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the test control plane: %v\n", err)
		os.Exit(1)
	}
	*cluster = s.c
	s.Main(m)
}

// Shared is a control plane the tests of a package share, started by the
// first test that asks for it with Get: tests that need none (of a
// command without a cluster, of a secret store) run without its start.
// Its TestMain is Shared.Main:
//
//	var controlPlane = kubetest.Shared{Options: kubetest.Options{…}}
//
//	func TestMain(m *testing.M) { controlPlane.Main(m) }
type Shared struct {
	// Options are the cluster's; read at its start.
	Options Options

	once sync.Once
	c    *Cluster
	err  error
}

// Get returns the cluster, starting it on the first call. A start that
// failed fails every test that asks.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	c, err := s.start()
	if err != nil {
		t.Fatalf("starting the test control plane: %v", err)
	}
	return c
}

func (s *Shared) start() (*Cluster, error) {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		began := time.Now()
		s.c, s.err = Start(ctx, s.Options)
		if s.err == nil && verbose() {
			fmt.Fprintf(os.Stderr, "kubetest: control plane started in %s\n", time.Since(began).Round(time.Millisecond))
		}
	})
	return s.c, s.err
}

// Main is the package's TestMain: it runs the tests, prints the control
// plane's logs if any failed, stops what the tests started through
// kubetest (the cluster if one asked for it, SharedVault's Vault, the kir
// of KirBinary) and exits with the tests' code.
func (s *Shared) Main(m *testing.M) {
	code := m.Run()
	if s.c != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "control plane logs:\n%s\n", s.c.Logs())
		}
		s.c.Stop()
	}
	stopSharedVault()
	removeKir()
	os.Exit(code)
}

// verbose reports whether go test was given -v, once flags are parsed.
func verbose() bool {
	return flag.Parsed() && testing.Verbose()
}
