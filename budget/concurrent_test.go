package budget_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/budget"
)

// podKeys are n distinct pods of ns.
func podKeys(ns string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/web-%02d", ns, i)
	}
	return keys
}

// checkOutcome checks that exactly `want` of the results are "ok", the
// rest "over", and that the object holds exactly the ok ones.
func checkOutcome(t *testing.T, b *budget.Budget, results []string, want int) {
	t.Helper()
	var ok, over, other []string
	for _, r := range results {
		switch verb, key, _ := strings.Cut(r, " "); verb {
		case "ok":
			ok = append(ok, key)
		case "over":
			over = append(over, key)
		default:
			other = append(other, r)
		}
	}
	if len(other) > 0 {
		t.Fatalf("Takes failed: %q", other)
	}
	if len(ok) != want || len(over) != len(results)-want {
		t.Fatalf("%d Takes succeeded and %d were over budget, want %d and %d", len(ok), len(over), want, len(results)-want)
	}
	s, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, r := range s.Pods.Slots {
		stored = append(stored, r.Key)
		if r.Run != "run-"+r.Key {
			t.Errorf("slot %s recorded for run %s, want run-%s", r.Key, r.Run, r.Key)
		}
	}
	slices.Sort(ok)
	slices.Sort(stored)
	if diff := cmp.Diff(ok, stored); diff != "" {
		t.Errorf("slots stored differ from the Takes that succeeded (-succeeded +stored):\n%s", diff)
	}
	if s.Pods.Used != want || s.Pods.Limit != budget.DefaultPods {
		t.Errorf("Status: %d of %d pods used, want %d of %d", s.Pods.Used, s.Pods.Limit, want, budget.DefaultPods)
	}
}

// Fifty runs take a pod slot each at once, through two clients with
// connections of their own: exactly the budget's 20 succeed.
func TestConcurrentTakesTwoClients(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	budgets := []*budget.Budget{
		{Client: separateClient(t), Namespace: ns, Config: budget.DefaultConfig()},
		{Client: separateClient(t), Namespace: ns, Config: budget.DefaultConfig()},
	}
	// Both connected before the start, so that the figure is the Takes'.
	for _, b := range budgets {
		if _, err := b.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	results := results(t.Context(), budgets, podKeys(ns, 50))
	t.Logf("50 concurrent Takes through two clients: %s", time.Since(start).Round(time.Millisecond))
	checkOutcome(t, budgets[0], results, budget.DefaultPods)
}

// The same through two processes, 25 runs each, released at once.
func TestConcurrentTakesTwoProcesses(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	keys := podKeys(ns, 50)
	var procs []*taker
	for i := range 2 {
		procs = append(procs, startTaker(t, ns, keys[i*25:(i+1)*25]))
	}
	start := time.Now()
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var results []string
	for _, p := range procs {
		results = append(results, p.wait(t)...)
	}
	t.Logf("50 concurrent Takes in two processes: %s", time.Since(start).Round(time.Millisecond))
	checkOutcome(t, &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig()}, results, budget.DefaultPods)
}

type taker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startTaker runs this test binary as a taker of keys and returns once
// it is connected and waits for the word.
func startTaker(t *testing.T, ns string, keys []string) *taker {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envTakerKubeconfig+"="+cluster.Kubeconfig, envTakerNamespace+"="+ns, envTakerKeys+"="+strings.Join(keys, ","))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &taker{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !p.out.Scan() || p.out.Text() != "ready" {
		t.Fatalf("taker process: %q, want ready", p.out.Text())
	}
	return p
}

// wait returns the taker's results once it exits.
func (p *taker) wait(t *testing.T) []string {
	t.Helper()
	var lines []string
	for p.out.Scan() {
		lines = append(lines, p.out.Text())
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("taker process: %v; output %q", err, lines)
	}
	return lines
}

// Writers that change the object all the time (here: an annotation, as
// kubectl would) make Takes conflict again and again; they still count
// every slot once.
func TestConflictStorm(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig()}
	if _, err := b.Take(t.Context(), budget.Pod, "first", []string{ns + "/first"}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	storm := make(chan int)
	go func() { storm <- hammer(ctx, ns) }()
	results := results(t.Context(), []*budget.Budget{b, {Client: separateClient(t), Namespace: ns, Config: budget.DefaultConfig()}}, podKeys(ns, 30))
	stop()
	t.Logf("%d writes of the storm landed meanwhile", <-storm)
	var ok int
	for _, r := range results {
		if strings.HasPrefix(r, "ok ") {
			ok++
		} else if !strings.HasPrefix(r, "over ") {
			t.Errorf("Take: %s", r)
		}
	}
	s, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ok != budget.DefaultPods-1 || s.Pods.Used != budget.DefaultPods {
		t.Errorf("%d Takes succeeded and %d slots are used, want %d and %d", ok, s.Pods.Used, budget.DefaultPods-1, budget.DefaultPods)
	}
}

// hammer updates an annotation of the budget's object until ctx ends,
// and returns how many of its writes landed.
func hammer(ctx context.Context, ns string) int {
	cms := cluster.Client.CoreV1().ConfigMaps(ns)
	n := 0
	for ctx.Err() == nil {
		cm, err := cms.Get(ctx, budget.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			continue
		}
		cm.Annotations["storm"] = fmt.Sprint(n)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err == nil {
			n++
		}
	}
	return n
}
