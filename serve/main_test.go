package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/falco"
	"kir.dev/kir/internal/journal"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/internal/spool"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/serve"
)

// The real control plane every test of this package shares.
var cluster *kubetest.Cluster

// asKirEnv makes the test binary run kir's command line, for tests that
// must kill a real kir serve process.
const asKirEnv = "KIR_TEST_AS_KIR"

func TestMain(m *testing.M) {
	if os.Getenv(asKirEnv) == "1" {
		os.Exit(cli.Run(context.Background(), append([]string{"kir"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	cluster, err = kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the test control plane: %v\n", err)
		return 1
	}
	defer cluster.Stop()
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "control plane logs:\n%s\n", cluster.Logs())
	}
	return code
}

const token = "test-token-0123456789abcdef"

var seq atomic.Int64

// world is one test's namespace and node with n Running pods.
type world struct {
	ns, node string
	pods     []corev1.Pod
}

func newWorld(t testing.TB, n int) *world {
	t.Helper()
	ctx := context.Background()
	ns, err := cluster.Namespace(ctx, "serve")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ns: ns, node: fmt.Sprintf("serve-node-%d-%d", os.Getpid()%10000, seq.Add(1))}
	if _, err := cluster.AddNode(ctx, w.node); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return w
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/hostname": w.node},
					Tolerations:  []corev1.Toleration{{Key: action.TaintKey, Operator: corev1.TolerationOpExists}, {Key: "node.kubernetes.io/unschedulable", Operator: corev1.TolerationOpExists}},
					Containers:   []corev1.Container{{Name: "web", Image: "registry.example/web:1"}},
				},
			},
		},
	}
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = kubetest.Eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		w.pods = w.pods[:0]
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				w.pods = append(w.pods, p)
			}
		}
		return len(w.pods) == n, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d pods: %v", n, err)
	}
	return w
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

// receiver is a kir serve in this process, on httptest.
type receiver struct {
	*httptest.Server
	srv    *serve.Server
	state  string
	engine *playbooks.Engine
	stop   context.CancelFunc
	spool  *spool.Spool
}

type receiverOpts struct {
	identity string
	claims   bool
	auth     *serve.Auth
	routing  *falco.Config
	workers  int
	queue    int
	state    string
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
	lib, err := playbooks.NewLibrary(catalog.Registry(), playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := journal.Open(filepath.Join(o.state, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &playbooks.Engine{Actions: catalog.Registry(), Journal: store, Evidence: filepath.Join(o.state, "evidence"), Version: "test"}
	sp, pending, err := spool.Open(filepath.Join(o.state, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	var claims *serve.Claims
	if o.claims {
		claims = &serve.Claims{Client: cluster.Client, Namespace: "default", Identity: o.identity, Duration: 3 * time.Second, Now: time.Now}
	}
	srv, err := serve.New(serve.Options{
		Auth: o.auth, Routing: o.routing, Library: lib, Engine: eng,
		Env:   action.Env{Kube: cluster.Client, Actor: "kubetest-admin", Version: "test", Cluster: cluster.Config.Host},
		Spool: sp, Pending: pending, Claims: claims, Workers: o.workers, Queue: o.queue,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	r := &receiver{Server: httptest.NewServer(srv.Handler()), srv: srv, state: o.state, engine: eng, stop: cancel, spool: sp}
	t.Cleanup(r.close)
	return r
}

func (r *receiver) close() {
	r.Server.Close()
	r.stop()
	r.srv.Wait()
	r.spool.Close()
}

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

// runs lists the runs a receiver's state holds.
func runsIn(t testing.TB, state string) []*playbooks.Run {
	t.Helper()
	store, err := journal.Open(filepath.Join(state, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &playbooks.Engine{Actions: catalog.Registry(), Journal: store}
	runs, err := eng.List()
	if err != nil {
		t.Fatal(err)
	}
	return runs
}
