package budget_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kir.dev/kir/budget"
	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/kubetest"
)

// The real control plane every test of this package shares: no
// controller-manager or scheduler, the budget needs neither.
var cluster *kubetest.Cluster

// Environment of a taker process (TestTwoProcesses): the test binary run
// again, taking slots instead of running tests.
const (
	envTakerKubeconfig = "KIR_BUDGET_TAKER_KUBECONFIG"
	envTakerNamespace  = "KIR_BUDGET_TAKER_NAMESPACE"
	envTakerKeys       = "KIR_BUDGET_TAKER_KEYS"
)

func TestMain(m *testing.M) {
	if os.Getenv(envTakerKubeconfig) != "" {
		os.Exit(runTaker())
	}
	kubetest.Main(m, &cluster, kubetest.Options{NoControllerManager: true, NoScheduler: true})
}

// runTaker is a process of its own with a client of its own: it says
// "ready", waits for a line on stdin, then takes a pod slot for each of
// its keys at once (one run per key) and prints "ok KEY", "over KEY" or
// "error KEY: …" for each.
func runTaker() int {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv(envTakerKubeconfig))
	if err != nil {
		fmt.Println("error config:", err)
		return 1
	}
	cfg.QPS, cfg.Burst = kube.DefaultQPS, kube.DefaultBurst // kir's
	b := &budget.Budget{Client: kubernetes.NewForConfigOrDie(cfg), Namespace: os.Getenv(envTakerNamespace), Config: budget.DefaultConfig()}
	ctx := context.Background()
	if _, err := b.Status(ctx); err != nil { // connected before the start
		fmt.Println("error status:", err)
		return 1
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Println("error stdin:", err)
		return 1
	}
	out := results(ctx, []*budget.Budget{b}, strings.Split(os.Getenv(envTakerKeys), ","))
	for _, r := range out {
		fmt.Println(r)
	}
	return 0
}

// results takes a pod slot for each key at once, for run "run-KEY",
// through the budgets in turn, and says "ok KEY", "over KEY" or
// "error KEY: …" for each.
func results(ctx context.Context, budgets []*budget.Budget, keys []string) []string {
	out := make([]string, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			_, err := budgets[i%len(budgets)].Take(ctx, budget.Pod, "run-"+key, []string{key})
			var over *budget.OverBudget
			switch {
			case err == nil:
				out[i] = "ok " + key
			case errors.As(err, &over):
				out[i] = "over " + key
			default:
				out[i] = fmt.Sprintf("error %s: %v", key, err)
			}
		})
	}
	wg.Wait()
	return out
}

// separateClient is a client with its own connections: client-go shares
// the transport of equal configs, which a proxy function prevents.
func separateClient(t testing.TB) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespace is a namespace of the test's, standing for kir's.
func namespace(t testing.TB) string {
	t.Helper()
	ns, err := cluster.Namespace(t.Context(), "budget")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// clock is a settable clock for Budget.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixedReady counts n Ready nodes.
func fixedReady(n int) func(context.Context) (int, error) {
	return func(context.Context) (int, error) { return n, nil }
}
