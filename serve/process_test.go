package serve_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/playbooks"
)

// kirBinary, when set, is the kir binary startServe runs instead of
// kubetest.KirBinary's: benchmarks that measure the process (its RSS) use
// the one make build makes.
var kirBinary string

// buildKir builds cmd/kir once, with make build, and makes startServe run
// it. The path is fixed, per user: every benchmark run overwrites the one
// binary rather than leaving one behind.
func buildKir(b *testing.B) {
	b.Helper()
	if kirBinary != "" {
		return
	}
	out := filepath.Join(os.TempDir(), fmt.Sprintf("kir-bench-%d", os.Getuid()), "kir")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		b.Fatal(err)
	}
	// The binary as released: make build's flags are its memory.
	if msg, err := exec.Command("make", "-s", "-C", "..", "build", "BIN="+out).CombinedOutput(); err != nil {
		b.Fatalf("building kir: %v\n%s", err, msg)
	}
	kirBinary = out
}

// serveProc is a real `kir serve` process: kubetest.KirBinary's kir, or
// kirBinary.
type serveProc struct {
	cmd  *exec.Cmd
	url  string
	logs string
}

// startServe runs kir serve on a free loopback port with state, claiming
// keys as identity, and waits until it is ready.
func startServe(t testing.TB, state, identity string, extra ...string) *serveProc {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logs := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := append([]string{"serve", "--listen", addr, "--token-file", tokenFile, "--state-dir", state,
		"--kubeconfig", cluster.Kubeconfig, "--identity", identity, "--lease-namespace", leaseNamespace(t), "--lease-duration", "3s",
		// The shared test cluster's Ready nodes come and go with each
		// test's fixture: the share would defer cordons by chance.
		"--budget-node-share", "1",
		// Its tamper guard (kir's namespace kir-system, every namespace)
		// would act on other tests' pods: serve/tamper_test.go runs its own.
		"--no-tamper"}, extra...)
	bin := kirBinary
	if bin == "" {
		bin = kubetest.KirBinary(t)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// kir serve dies with the test binary, even one killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, url: "http://" + addr, logs: logs}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("KIR_TEST_SHOW_LOGS") != "" {
			b, _ := os.ReadFile(logs)
			t.Logf("kir serve %s logs:\n%s", identity, b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logs)
			t.Fatalf("kir serve not ready within 30s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaseNamespaces are the namespaces of each test's claims and records:
// the replicas of one test share theirs, and no test takes over another's
// records.
var leaseNamespaces sync.Map

func leaseNamespace(t testing.TB) string {
	t.Helper()
	test, _, _ := strings.Cut(t.Name(), "/")
	if ns, ok := leaseNamespaces.Load(test); ok {
		return ns.(string)
	}
	ns, err := cluster.Namespace(context.Background(), "claims")
	if err != nil {
		t.Fatal(err)
	}
	actual, _ := leaseNamespaces.LoadOrStore(test, ns)
	return actual.(string)
}

func (p *serveProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

func (p *serveProc) post(t testing.TB, body []byte) int {
	t.Helper()
	code, _ := postTo(t, p.url, body)
	return code
}

// finishedRuns waits until the state holds n runs, none interrupted, and
// returns them.
func finishedRuns(t testing.TB, state string, n int, within time.Duration) []*playbooks.Run {
	t.Helper()
	var runs []*playbooks.Run
	deadline := time.Now().Add(within)
	for {
		runs = runsIn(t, state)
		done := 0
		for _, r := range runs {
			switch r.Status {
			case playbooks.RunSucceeded, playbooks.RunFailed, playbooks.RunPartial:
				done++
			}
		}
		if done == n && len(runs) == n {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs, %d finished, within %s; want %d", len(runs), done, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKilledServerResumes: kir serve is SIGKILLed with alerts queued (one
// worker, a dozen alerts); restarted on the same state, it processes every
// accepted alert, and no pod is contained twice.
func TestKilledServerResumes(t *testing.T) {
	t.Parallel()
	const n = 12
	w := newWorld(t, n)
	state := t.TempDir()
	p := startServe(t, state, "replica-killed", "--workers", "1")
	for i, pod := range w.pods {
		if code := p.post(t, alert(t, w.ns, pod.Name, fmt.Sprintf("uuid-kill-%d", i))); code != 202 {
			t.Fatalf("POST %d: %d", i, code)
		}
	}
	p.kill()
	before := runsIn(t, state)
	t.Logf("killed with %d of %d runs started", len(before), n)
	if len(before) == n {
		t.Log("every run had started before the kill: the queue was empty; the test proves less")
	}

	startServe(t, state, "replica-killed", "--workers", "4")
	for _, pod := range w.pods {
		waitIsolated(t, pod, 30*time.Second)
	}
	runs := finishedRuns(t, state, n, 60*time.Second)
	pods := map[any]bool{}
	for _, r := range runs {
		if r.Status != playbooks.RunSucceeded {
			t.Errorf("run %s: %s %s", r.ID, r.Status, r.Error)
		}
		pods[r.Params["name"]] = true
	}
	if len(pods) != n {
		t.Errorf("runs cover %d pods, want %d", len(pods), n)
	}
	// A run killed between its writes and the Event that notes them is
	// resumed as already done: its pod may have no Event (the journal
	// and the policy's record hold the containment). None has two.
	interrupted := map[any]bool{}
	for _, r := range before {
		interrupted[r.Params["name"]] = true
	}
	for _, pod := range w.pods {
		if c := quarantineEvents(t, pod); c > 1 || (c == 0 && !interrupted[pod.Name]) {
			t.Errorf("pod %s contained %d times, want once", pod.Name, c)
		}
	}
}

// TestTwoServeProcessesOneContainment: two kir serve processes on the same
// cluster get the same alert at the same moment: one containment.
func TestTwoServeProcessesOneContainment(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	stateA, stateB := t.TempDir(), t.TempDir()
	a := startServe(t, stateA, "replica-a")
	b := startServe(t, stateB, "replica-b")
	body := alert(t, w.ns, w.pods[0].Name, "uuid-two-processes")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, p := range []*serveProc{a, b} {
		wg.Go(func() { codes[i] = p.post(t, body) })
	}
	wg.Wait()
	if codes[0] != 202 || codes[1] != 202 {
		t.Fatalf("POST: %v", codes)
	}
	waitIsolated(t, w.pods[0], 20*time.Second)
	// Whichever lost the claim waits for the winner's run to finish and
	// then counts its alert as a duplicate; give it that time.
	time.Sleep(2 * time.Second)
	ra, rb := runsIn(t, stateA), runsIn(t, stateB)
	if len(ra)+len(rb) != 1 {
		t.Errorf("replica a ran %d, replica b %d playbooks; want 1 in all", len(ra), len(rb))
	}
	if c := quarantineEvents(t, w.pods[0]); c != 1 {
		t.Errorf("%d containments, want 1", c)
	}
}
