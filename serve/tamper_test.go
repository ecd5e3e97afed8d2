package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/evidence"
	"kir.dev/kir/falco"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/notify"
	"kir.dev/kir/serve"
	"kir.dev/kir/tamper"
)

// tamperReaction is how fast kir serve must restore a lifted quarantine.
const tamperReaction = 5 * time.Second

// TestServeRestoresLiftedQuarantines is the acceptance without the
// fence, with kir serve in this process, its guard on: a pod contained by
// an alert (its evidence sealed, signed); the pod namespace's own
// ServiceAccount removes the label (back within 5 s) and deletes kir's
// policy (recreated), adds an allow-all policy (reported: Event, metric,
// custody entry, notification; not deleted); the bundle still verifies
// with the key. Then serve stops, the label and the policy are removed,
// and the next serve restores both at start; kir release pod, while it
// runs, releases the pod for good.
func TestServeRestoresLiftedQuarantines(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kir := cluster.NewFixture(t, "tamper-kir", 0)
	w := newWorld(t, 1)
	pod := w.pods[0]
	keys, state, dir := t.TempDir(), t.TempDir(), t.TempDir()
	kirCLI := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	kirCLI.MustRun(t, "evidence", "keygen", "--out", keys)
	recv := &notified{key: []byte("notification-key-0123456789")}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	routing := tamperRouting(t, dir, hook.URL, string(recv.key))

	metrics := serve.NewMetrics()
	stop := startTamperServe(t, kir.Namespace, w.ns, state, filepath.Join(keys, "kir.key"), routing, metrics)
	if code, body := postTo(t, stop.url, alert(t, w.ns, pod.Name, "uuid-tamper")); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	waitIsolated(t, pod, 30*time.Second)
	pol := kirPolicy(t, pod)
	incident := pol.Annotations[action.AnnotationIncident]
	bundle := waitBundle(t, filepath.Join(state, "evidence"), incident)
	kc := podNamespaceAttacker(t, w.ns)

	patch := []byte(`{"metadata":{"labels":{"` + action.LabelQuarantine + `":null}}}`)
	if _, err := kc.CoreV1().Pods(w.ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("the attacker removing the label: %v", err)
	}
	t.Logf("label back in %s", waitQuarantined(t, pod, tamperReaction))
	if err := kc.NetworkingV1().NetworkPolicies(w.ns).Delete(ctx, pol.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("the attacker deleting kir's policy: %v", err)
	}
	t.Logf("policy back in %s", waitQuarantined(t, pod, tamperReaction))
	open := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-all"}, Spec: networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, Ingress: []networkingv1.NetworkPolicyIngressRule{{}},
	}}
	if _, err := kc.NetworkingV1().NetworkPolicies(w.ns).Create(ctx, open, metav1.CreateOptions{FieldManager: "helpful-tool"}); err != nil {
		t.Fatal(err)
	}
	admits := metrics.Tamper.WithLabelValues(string(tamper.PolicyAdmits), "reported")
	err := kubetest.Eventually(ctx, tamperReaction, func(context.Context) (bool, error) { return counterValue(t, admits) >= 1, nil })
	if err != nil {
		t.Fatalf("the allow-all policy was not counted within %s", tamperReaction)
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(w.ns).Get(ctx, "allow-all", metav1.GetOptions{}); err != nil {
		t.Errorf("the allow-all policy was deleted: %v", err)
	}
	for kind, result := range map[tamper.Kind]string{tamper.LabelRemoved: "restored", tamper.PolicyDeleted: "restored"} {
		if n := counterValue(t, metrics.Tamper.WithLabelValues(string(kind), result)); n != 1 {
			t.Errorf("kir_tamper_findings_total{kind=%s,result=%s} = %v, want 1", kind, result, n)
		}
	}
	// This cluster has no admission fence (package fence): the guard says
	// so, once.
	if n := counterValue(t, metrics.Tamper.WithLabelValues(string(tamper.FenceChanged), "reported")); n != 1 {
		t.Errorf("kir_tamper_findings_total{kind=fence-changed} = %v, want 1 (no fence installed here)", n)
	}
	for reason, n := range map[string]int{"QuarantineTampered": 2, "QuarantineWeakened": 1} {
		if got := eventsWithReason(t, pod, reason); got != n {
			t.Errorf("%d %s Events on the pod, want %d", got, reason, n)
		}
	}
	checkTamperCustody(t, bundle, keys, "tamper-label-removed", "tamper-policy-deleted", "tamper-policy-admits")
	err = kubetest.Eventually(ctx, 30*time.Second, func(context.Context) (bool, error) { return recv.kinds()[notify.KindTampered] >= 4, nil })
	if err != nil {
		t.Errorf("tampered notifications: %v, want 4 (label, policy, allow-all, fence)", recv.kinds())
	}

	// Lifted while serve is down: restored at its start.
	stop.stop()
	if _, err := kc.CoreV1().Pods(w.ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kc.NetworkingV1().NetworkPolicies(w.ns).Delete(ctx, pol.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	startTamperServe(t, kir.Namespace, w.ns, state, filepath.Join(keys, "kir.key"), routing, serve.NewMetrics())
	t.Logf("label and policy back in %s after serve started", waitQuarantined(t, pod, 20*time.Second))

	// kir release while the guard runs: released for good.
	kirCLI.MustRun(t, "release", "pod", pod.Name, "-n", w.ns, "--kir-namespace", kir.Namespace, "--state-dir", t.TempDir())
	deadline := time.Now().Add(3 * tamperReaction)
	for time.Now().Before(deadline) {
		p, err := cluster.Client.CoreV1().Pods(w.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, perr := cluster.Client.NetworkingV1().NetworkPolicies(w.ns).Get(ctx, pol.Name, metav1.GetOptions{})
		if p.Labels[action.LabelQuarantine] != "" || perr == nil {
			t.Fatalf("after kir release, the guard restored the quarantine: label %q, policy %v", p.Labels[action.LabelQuarantine], perr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// tamperServe is an in-process kir serve with its tamper guard.
type tamperServe struct {
	url  string
	stop func()
}

func startTamperServe(t *testing.T, kirNS, watch, state, key string, routing *falco.Config, m *serve.Metrics) *tamperServe {
	t.Helper()
	srv, err := serve.NewServer(serve.Options{
		Auth: &serve.Auth{Token: []byte(token)}, Routing: routing, Library: library(t), Engine: newEngine(t, state), Key: key,
		Env:      action.Env{Kube: cluster.Client, Actor: "kir-serve-test", Version: "test", Cluster: cluster.Config.Host, KirNamespace: kirNS},
		SpoolDir: filepath.Join(state, "spool"), Metrics: m,
		Tamper: &tamper.Options{Watch: watch, Identity: "serve-" + filepath.Base(state), Resync: 2 * time.Second,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(testLog(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	srv.Start(sctx)
	hs := httptest.NewServer(srv.Handler())
	stopped := false
	s := &tamperServe{url: hs.URL, stop: func() {
		if !stopped {
			stopped = true
			hs.Close()
			cancel()
			srv.Wait()
			srv.Close()
		}
	}}
	t.Cleanup(s.stop)
	return s
}

// tamperRouting is the default routing, without cordon or images, with a
// webhook sink at url.
func tamperRouting(t *testing.T, dir, url, key string) *falco.Config {
	t.Helper()
	for name, v := range map[string]string{"url": url, "key": key, "token": token} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := falco.ParseConfig("routing.yaml", []byte(fmt.Sprintf(`apiVersion: kir.dev/v1alpha1
kind: Routing
notifications:
  sinks:
    - name: hook
      type: webhook
      urlFile: %s
      keyFile: %s
      tokenFile: %s
rules:
  - name: contain
    match:
      priority: ">=Critical"
    playbook: contain-pod
    params:
      namespace: ${k8s.ns.name}
      name: ${k8s.pod.name}
      cordon: false
      images: false
`, filepath.Join(dir, "url"), filepath.Join(dir, "key"), filepath.Join(dir, "token"))))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func kirPolicy(t *testing.T, pod corev1.Pod) *networkingv1.NetworkPolicy {
	t.Helper()
	p, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).Get(t.Context(), action.PolicyName(action.QuarantineValue(pod.UID)), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitBundle waits for the sealed bundle of incident under dir.
func waitBundle(t *testing.T, dir, incident string) string {
	t.Helper()
	var found string
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(context.Context) (bool, error) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name(), evidence.ManifestFile))
			var m evidence.Manifest
			if err == nil && json.Unmarshal(raw, &m) == nil && m.Incident == incident {
				found = filepath.Join(dir, e.Name())
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil || incident == "" {
		t.Fatalf("no sealed bundle of incident %q under %s: %v", incident, dir, err)
	}
	return found
}

// waitQuarantined waits until pod has its label and its policy isolates
// it as kir wrote it (no ingress rule), and returns how long it took.
func waitQuarantined(t *testing.T, pod corev1.Pod, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := kubetest.Eventually(t.Context(), within, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || p.Labels[action.LabelQuarantine] != action.QuarantineValue(pod.UID) {
			return false, err
		}
		pol, err := cluster.Client.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, action.PolicyName(action.QuarantineValue(pod.UID)), metav1.GetOptions{})
		return err == nil && len(pol.Spec.Ingress) == 0 && len(pol.Spec.PolicyTypes) == 2, nil
	})
	if err != nil {
		t.Fatalf("pod %s not quarantined again within %s: %v", pod.Name, within, err)
	}
	return time.Since(start)
}

// podNamespaceAttacker is a ServiceAccount of ns that may patch pods and
// delete and create NetworkPolicies there.
func podNamespaceAttacker(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx, c := t.Context(), cluster.Client
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "lifter"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "lifter"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"create", "delete"}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lifter"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "lifter"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "lifter", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountConfig(ctx, ns, "lifter")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func eventsWithReason(t *testing.T, pod corev1.Pod, reason string) int {
	t.Helper()
	list, err := cluster.Client.CoreV1().Events(pod.Namespace).List(t.Context(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + pod.Name + ",reason=" + reason,
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// checkTamperCustody: the bundle's custody log has an entry of each
// action, and the bundle verifies with the key (kir evidence verify).
func checkTamperCustody(t *testing.T, bundle, keys string, actions ...string) {
	t.Helper()
	custody, err := os.ReadFile(filepath.Join(bundle, evidence.CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		if !strings.Contains(string(custody), `"type":"`+a+`"`) {
			t.Errorf("custody log of %s has no %s entry:\n%s", bundle, a, custody)
		}
	}
	if !strings.Contains(string(custody), "unauthenticated") {
		t.Errorf("custody entries do not say the manager is unauthenticated")
	}
	if v := (kubetest.Kir{}).Run(t, "evidence", "verify", bundle, "--key", filepath.Join(keys, "kir.pub")); v.Code != 0 {
		t.Errorf("kir evidence verify: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}
}
