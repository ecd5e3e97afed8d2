package serve_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
	"kir.dev/kir/falco"
	"kir.dev/kir/guard"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/serve"
)

// TestGuardRefusesProtectedTargets: authenticated alerts naming a
// kube-system pod, a pod of kir serve's own namespace and a pod of the
// protect list (kir-protect's podSelectors) change nothing in the cluster
// and count as refused runs, with no dedup window; an alert for an
// unprotected pod beside them is acted on.
func TestGuardRefusesProtectedTargets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kir := cluster.NewFixture(t, "guard-kir", 1) // kir serve's namespace and a replica
	app := cluster.NewFixture(t, "guard-app", 2)
	protected, other := app.Pods[0], app.Pods[1]
	patch := []byte(`{"metadata":{"labels":{"tier":"payments"}}}`)
	if _, err := cluster.Client.CoreV1().Pods(app.Namespace).Patch(ctx, protected.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.CoreV1().ConfigMaps(kir.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: guard.ConfigMap},
		Data:       map[string]string{guard.KeyPodSelectors: "# the payment pods\ntier in (payments, ledger)\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	state := t.TempDir()
	metrics := serve.NewMetrics()
	srv, err := serve.NewServer(serve.Options{
		Auth: &serve.Auth{Token: []byte(token)}, Routing: falco.DefaultConfig(), Library: library(t), Engine: newEngine(t, state),
		Env:      action.Env{Kube: cluster.Client, Actor: "kubetest-admin", Version: "test", Cluster: cluster.Config.Host},
		SpoolDir: filepath.Join(state, "spool"), Guard: &guard.Guard{Namespace: kir.Namespace, Force: true}, // serve never forces
		Metrics: metrics, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	srv.Start(sctx)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); stop(); srv.Wait(); srv.Close() })

	refused := func() float64 { return counterValue(t, metrics.Runs.WithLabelValues("contain-pod", "refused")) }
	waitRefused := func(n float64) {
		t.Helper()
		err := kubetest.Eventually(ctx, 20*time.Second, func(context.Context) (bool, error) { return refused() >= n, nil })
		if err != nil || refused() != n {
			t.Fatalf("refused runs: %v, want %v (%v)", refused(), n, err)
		}
	}
	targets := [][2]string{{"kube-system", "coredns-7db6d8ff4d-x2x9q"}, {kir.Namespace, kir.Pods[0].Name}, {app.Namespace, protected.Name}}
	for i, tg := range targets {
		if code, body := postTo(t, hs.URL, alert(t, tg[0], tg[1], fmt.Sprintf("guard-%d", i))); code != http.StatusAccepted {
			t.Fatalf("alert on %s/%s: %d %s", tg[0], tg[1], code, body)
		}
	}
	if code, body := postTo(t, hs.URL, alert(t, app.Namespace, other.Name, "guard-other")); code != http.StatusAccepted {
		t.Fatalf("alert on %s: %d %s", other.Name, code, body)
	}
	waitIsolated(t, other, 20*time.Second)
	waitRefused(3)
	// No dedup window: the same target again is refused again, not a duplicate.
	if code, _ := postTo(t, hs.URL, alert(t, "kube-system", targets[0][1], "guard-again")); code != http.StatusAccepted {
		t.Fatalf("second kube-system alert: %d", code)
	}
	waitRefused(4)
	// The unprotected pod's run goes on collecting evidence into state
	// once it is isolated: let it end before the test's directories go.
	ended := func() float64 {
		var n float64
		for _, status := range []string{"succeeded", "partial", "failed"} {
			n += counterValue(t, metrics.Runs.WithLabelValues("contain-pod", status))
		}
		return n
	}
	if err := kubetest.Eventually(ctx, 60*time.Second, func(context.Context) (bool, error) { return ended() >= 1, nil }); err != nil {
		t.Fatalf("the unprotected pod's run did not end: %v", err)
	}
	if got := counterValue(t, metrics.Deduplicated); got != 0 {
		t.Errorf("deduplicated alerts: %v, want 0", got)
	}

	// Nothing changed: no kir policy, label or annotation on the protected
	// pods, kir's node schedulable, no journal but the unprotected pod's.
	for _, p := range []corev1.Pod{kir.Pods[0], protected} {
		got, err := cluster.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := got.Labels[action.LabelQuarantine]; ok {
			t.Errorf("pod %s/%s labelled %s=%s", p.Namespace, p.Name, action.LabelQuarantine, v)
		}
		if v, ok := got.Annotations[action.AnnotationIncident]; ok {
			t.Errorf("pod %s/%s annotated with incident %s", p.Namespace, p.Name, v)
		}
	}
	for _, ns := range []string{kir.Namespace, "kube-system"} {
		nps, err := cluster.Client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nps.Items) != 0 {
			t.Errorf("%d NetworkPolicies in %s, want none", len(nps.Items), ns)
		}
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(app.Namespace).Get(ctx, action.PolicyName(action.QuarantineValue(protected.UID)), metav1.GetOptions{}); err == nil {
		t.Errorf("the protected pod %s has a quarantine policy", protected.Name)
	}
	node, err := cluster.Client.CoreV1().Nodes().Get(ctx, kir.Node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Spec.Unschedulable {
		t.Errorf("kir's node %s was cordoned", kir.Node)
	}
	runs := runsIn(t, state)
	if len(runs) != 1 || runs[0].Params["name"] != other.Name {
		t.Errorf("journaled runs: %d, want only the unprotected pod's", len(runs))
	}
}

// counterValue is c's count.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
