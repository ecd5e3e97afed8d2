package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var kirBuild struct {
	once sync.Once
	path string
	err  error
}

// KirBinary returns the path of kir built from this checkout, once per test
// process: with the kirtest build tag, which compiles in the hook tests use
// to SIGKILL kir after a given journal record (KIR_TEST_KILL_AFTER), and
// with the race detector when this test binary has it. Tests that must run
// kir as a real process — kill it, or run it beside another — use it. The
// binary lives in a kubetest-<pid>-* directory, which a later Start sweeps
// once this process is gone.
func KirBinary(t testing.TB) string {
	t.Helper()
	kirBuild.once.Do(func() { kirBuild.path, kirBuild.err = buildKir() })
	if kirBuild.err != nil {
		t.Fatalf("building kir: %v", kirBuild.err)
	}
	return kirBuild.path
}

func buildKir() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir, err := os.MkdirTemp(baseDir(), fmt.Sprintf("kubetest-%d-kir-", os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kir")
	// The tags of the shipped build (Makefile's BUILDFLAGS) plus kirtest.
	args := []string{"build", "-trimpath", "-tags", "kustomize_disable_go_plugin_support,kirtest", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/kir")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// removeKir removes the binary KirBinary built, if it did.
func removeKir() {
	if kirBuild.path != "" {
		_ = os.RemoveAll(filepath.Dir(kirBuild.path))
	}
}

// Kir runs kir (KirBinary) as a real process, one per call: runs share
// nothing but the files they are given, so tests running kir stay
// parallel, and a test can kill kir (KIR_TEST_KILL_AFTER) or run two at
// once. The zero value runs kir against no cluster, with a state directory
// of its own for each call.
//
// kir's environment is this process's without the variables that
// configure kir or the stores it reaches (KUBECONFIG, KIR_*, VAULT_*,
// AWS_*), so that a developer's settings never reach a test, plus
// KUBECONFIG and KIR_STATE_DIR from Kubeconfig and StateDir, plus Env. A
// race-built kir also gets atexit_sleep_ms=0 in GORACE (see noExitSleep).
type Kir struct {
	// Kubeconfig is kir's KUBECONFIG; empty: unset.
	Kubeconfig string
	// StateDir is kir's KIR_STATE_DIR, where it keeps its runs; empty: a
	// new temporary directory for each call.
	StateDir string
	// Env are added to kir's environment, NAME=value, last wins:
	// VAULT_ADDR and VAULT_TOKEN (Vault.Env), KIR_TEST_KILL_AFTER, ….
	Env []string
	// Stdin is kir's standard input; nil: none (/dev/null).
	Stdin io.Reader
}

// Result is what a kir process did.
type Result struct {
	// Code is its exit code, or minus the signal that killed it: -9 for
	// a SIGKILL.
	Code           int
	Stdout, Stderr string
	// CPU is the CPU time kir used, user and system: kubetest.CPUTimes
	// misses a process that has exited.
	CPU time.Duration
}

// Run runs kir with args, waits for it to exit and returns what it did.
// kir is killed when the test ends.
func (k Kir) Run(t testing.TB, args ...string) Result {
	t.Helper()
	cmd := k.command(t, t.Context(), args)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := kirLauncher().start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	r := Result{Stdout: out.String(), Stderr: errOut.String()}
	if ps := cmd.ProcessState; ps != nil {
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Code = -int(ws.Signal())
		}
	default:
		t.Fatalf("running kir %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// MustRun is Run that fails the test unless kir exits 0.
func (k Kir) MustRun(t testing.TB, args ...string) Result {
	t.Helper()
	r := k.Run(t, args...)
	if r.Code != 0 {
		t.Fatalf("kir %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// Start starts a long-running kir (kir serve) with args and returns at
// once. Its output, stdout and stderr together, goes to a file that Output
// reads; it is killed when the test ends, and its output logged if the
// test failed.
func (k Kir) Start(t testing.TB, args ...string) *KirProcess {
	t.Helper()
	// Not the test's context: a process started by a subtest may serve
	// its parent after the subtest ends.
	cmd := k.command(t, context.Background(), args)
	log := filepath.Join(t.TempDir(), "kir.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := kirLauncher().start(cmd); err != nil {
		t.Fatalf("starting kir %s: %v", strings.Join(args, " "), err)
	}
	p := &KirProcess{cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("kir %s, output:\n%s", strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// command is kir with args and k's environment, killed when ctx ends.
func (k Kir) command(t testing.TB, ctx context.Context, args []string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, KirBinary(t), args...)
	state := k.StateDir
	if state == "" {
		state = t.TempDir()
	}
	env := []string{"KIR_STATE_DIR=" + state}
	if raceEnabled {
		env = append(env, "GORACE="+noExitSleep(os.Getenv("GORACE")))
	}
	if k.Kubeconfig != "" {
		env = append(env, "KUBECONFIG="+k.Kubeconfig)
	}
	cmd.Env = append(append(hermeticEnv(), env...), k.Env...)
	cmd.Stdin = k.Stdin
	// Pdeathsig (see launcher): kir dies with the test binary, even one
	// killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second // a hook's grandchild holding a pipe
	return cmd
}

// noExitSleep returns GORACE's options with the race detector's sleep at
// exit (a second by default, which a test that runs kir a hundred times
// pays a hundred times) turned off unless they set it. Races are reported
// as they happen; the sleep only gives goroutines still running at exit a
// chance to race.
func noExitSleep(gorace string) string {
	if strings.Contains(gorace, "atexit_sleep_ms") {
		return gorace
	}
	return strings.TrimSpace(gorace + " atexit_sleep_ms=0")
}

// hermeticEnv is this process's environment without what configures kir
// or its stores.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "KUBECONFIG", strings.HasPrefix(name, "KIR_"), strings.HasPrefix(name, "VAULT_"), strings.HasPrefix(name, "AWS_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// kirLauncher starts every kir process of this test process, from one
// thread that lives as long as the process (see launcher).
var kirLauncher = sync.OnceValue(newLauncher)

// KirProcess is a kir started by Kir.Start.
type KirProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // how it exited; read once done is closed
}

// Signal sends sig to kir (SIGTERM: shut down as on ^C).
func (p *KirProcess) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Kill kills kir with SIGKILL, if it still runs, and waits for it.
func (p *KirProcess) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // fails only once it has exited
	<-p.done
}

// Wait waits until kir exits and returns how: nil for exit code 0, else
// an *exec.ExitError.
func (p *KirProcess) Wait() error {
	<-p.done
	return p.err
}

// Done is closed once kir has exited.
func (p *KirProcess) Done() <-chan struct{} { return p.done }

// Pid is kir's process id.
func (p *KirProcess) Pid() int { return p.cmd.Process.Pid }

// Output returns what kir printed so far, stdout and stderr together.
func (p *KirProcess) Output() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
