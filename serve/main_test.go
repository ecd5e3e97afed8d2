package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/contain"
	"kir.dev/kir/falco"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/internal/spool"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
	"kir.dev/kir/serve"
)

// The real control plane every test of this package shares.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) {
	kubetest.Main(m, &cluster, kubetest.Options{Setup: func(ctx context.Context, c *kubetest.Cluster) (func(), error) {
		return nil, c.InstallCRD(ctx, "../deploy/components/records/crd.yaml")
	}})
}

// kirActions are the actions the built-in playbooks name: every package's
// list, as kir's catalog (cmd/kir/internal/catalog) joins them.
func kirActions(t testing.TB) action.Registry {
	t.Helper()
	r, err := action.NewRegistry(slices.Concat(contain.Actions(), collect.Actions(), rotate.Actions(rotate.Stores{}))...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newEngine is kir's engine on state: its runs and evidence under it.
func newEngine(t testing.TB, state string) playbooks.Engine {
	t.Helper()
	runs, err := playbooks.OpenRuns(filepath.Join(state, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	return playbooks.Engine{Actions: kirActions(t), Runs: runs, Evidence: filepath.Join(state, "evidence"), Version: "test"}
}

// library is the built-in playbooks.
func library(t testing.TB) *playbooks.Library {
	t.Helper()
	lib, err := playbooks.NewLibrary(kirActions(t), playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

const token = "test-token-0123456789abcdef"

// world is one test's namespace and node with n Running pods of the
// Deployment web.
type world struct {
	ns, node string
	pods     []corev1.Pod
}

func newWorld(t testing.TB, n int) *world {
	t.Helper()
	f := cluster.NewFixture(t, "serve", int32(n))
	return &world{ns: f.Namespace, node: f.Node, pods: f.Pods}
}

// alert is a real Falcosidekick payload (testdata/falco) about pod.
func alert(t testing.TB, ns, pod, uuid string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../testdata/falco/sidekick-drop-execute.json")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	a["uuid"] = uuid
	fields := a["output_fields"].(map[string]any)
	fields["k8s.ns.name"], fields["k8s.pod.name"] = ns, pod
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testLog is where in-process receivers log: stderr with
// KIR_TEST_SHOW_LOGS set, nowhere otherwise.
func testLog() io.Writer {
	if os.Getenv("KIR_TEST_SHOW_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// receiver is a kir serve in this process, on httptest.
type receiver struct {
	*httptest.Server
	srv   *serve.Server
	state string
	stop  context.CancelFunc
}

type receiverOpts struct {
	identity string
	claims   bool
	auth     *serve.Auth
	routing  *falco.Config
	workers  int
	queue    int
	state    string
	// runs, when set, is the state directory of the runs and their
	// evidence (a volume replicas share); the spool stays in state.
	runs string
	// kube, when set, is the client the runs act with.
	kube         kubernetes.Interface
	retryBackoff time.Duration
}

func newReceiver(t testing.TB, o receiverOpts) *receiver {
	t.Helper()
	if o.state == "" {
		o.state = t.TempDir()
	}
	if o.auth == nil {
		o.auth = &serve.Auth{Token: []byte(token)}
	}
	if o.routing == nil {
		o.routing = falco.DefaultConfig()
	}
	var claims *serve.Claims
	if o.claims {
		claims = &serve.Claims{Client: cluster.Client, Namespace: "default", Identity: o.identity, Duration: 3 * time.Second, Now: time.Now}
	}
	if o.runs == "" {
		o.runs = o.state
	}
	if o.kube == nil {
		o.kube = cluster.Client
	}
	srv, err := serve.NewServer(serve.Options{
		Auth: o.auth, Routing: o.routing, Library: library(t), Engine: newEngine(t, o.runs),
		Env:      action.Env{Kube: o.kube, Actor: "kubetest-admin", Version: "test", Cluster: cluster.Config.Host},
		SpoolDir: filepath.Join(o.state, "spool"), Claims: claims, Workers: o.workers, Queue: o.queue,
		RetryBackoff: o.retryBackoff,
		Log:          slog.New(slog.NewTextHandler(testLog(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	r := &receiver{Server: httptest.NewServer(srv.Handler()), srv: srv, state: o.state, stop: cancel}
	t.Cleanup(r.close)
	return r
}

func (r *receiver) close() {
	r.Server.Close()
	r.stop()
	r.srv.Wait()
	r.srv.Close()
}

// stats are the counts of the receiver's spool.
func (r *receiver) stats() spool.Stats { return r.srv.SpoolStats() }

// post sends an alert with the token and returns the status and body.
func (r *receiver) post(t testing.TB, body []byte) (int, string) {
	t.Helper()
	return postTo(t, r.URL, body)
}

// postTo posts an alert to the receiver at url with the token.
func postTo(t testing.TB, url string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/falco", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitIsolated waits until pod's quarantine policy is stored.
func waitIsolated(t testing.TB, pod corev1.Pod, within time.Duration) {
	t.Helper()
	name := action.PolicyName(action.QuarantineValue(pod.UID))
	err := kubetest.Eventually(context.Background(), within, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("pod %s/%s not isolated within %s: %v", pod.Namespace, pod.Name, within, err)
	}
}

// quarantineEvents counts the Events kir emitted on pod for isolating it:
// one per containment.
func quarantineEvents(t testing.TB, pod corev1.Pod) int {
	t.Helper()
	list, err := cluster.Client.CoreV1().Events(pod.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + pod.Name + ",reason=Quarantined",
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// runsIn lists the runs a receiver's state holds.
func runsIn(t testing.TB, state string) []*playbooks.Run {
	t.Helper()
	eng := newEngine(t, state)
	runs, err := eng.List()
	if err != nil {
		t.Fatal(err)
	}
	return runs
}
