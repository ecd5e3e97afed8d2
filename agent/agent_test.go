package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
	"kir.dev/kir/agent/volatile"
	"kir.dev/kir/internal/kubetest"
)

// These tests run the agent against the real API server, with a network
// of the test's: they prove what the agent decides and writes. What it
// does to packets, on a real node, is proven by internal/nodetest and
// agent/netcut.

var cluster *kubetest.Cluster

func TestMain(m *testing.M) { kubetest.Main(m, &cluster, kubetest.Options{}) }

// fakeNetwork is a node whose pods reach the probe target until enforced
// is set; it counts what the agent cut.
type fakeNetwork struct {
	enforced atomic.Bool
	mu       sync.Mutex
	cuts     int
	deleted  []netip.Addr
	opened   []string
}

type fakeNS struct{}

func (fakeNS) Close() error { return nil }

func (f *fakeNetwork) open(path string) (podNS, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, path)
	return fakeNS{}, nil
}

func (f *fakeNetwork) probe(_ context.Context, ns podNS, _ netip.AddrPort, _ time.Duration) (string, string) {
	if ns != nil && f.enforced.Load() {
		return "timed-out", "i/o timeout"
	}
	return outcomeConnected, ""
}

func (f *fakeNetwork) cut(context.Context, podNS) (int, int, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cuts++
	return 2, 1, nil, nil
}

func (f *fakeNetwork) sockets(context.Context, podNS, []volatile.Process) ([]volatile.Socket, error) {
	return nil, nil
}

func (f *fakeNetwork) sessions(context.Context, podNS) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cuts > 0 {
		return 0, nil
	}
	return 3, nil
}

func (f *fakeNetwork) deleteFlows(_ context.Context, ips []netip.Addr) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, ips...)
	return 4, nil
}

func (f *fakeNetwork) countFlows(context.Context, []netip.Addr) (int, error) { return 0, nil }

func (f *fakeNetwork) cutCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cuts
}

// world is one test's: a kwok node with a pod, a /proc where that pod
// has a process in a network namespace of its own, and an agent.
type world struct {
	f    *kubetest.Fixture
	pod  *corev1.Pod
	kir  string // kir's namespace
	net  *fakeNetwork
	proc string
}

func newWorld(t *testing.T, hostNetwork bool) *world {
	t.Helper()
	f := cluster.NewFixture(t, "agent", 0)
	w := &world{f: f, net: &fakeNetwork{}, proc: t.TempDir()}
	pods := f.Deploy(t, kubetest.Deployment{Name: "web", Template: func(p *corev1.PodTemplateSpec) { p.Spec.HostNetwork = hostNetwork }})
	w.pod = &pods[0]
	kirNS, err := cluster.Namespace(t.Context(), "kir")
	if err != nil {
		t.Fatal(err)
	}
	w.kir = kirNS
	// /proc: the agent's own namespace; the pod's sandbox process, 4242;
	// and a later process of the pod's, 100001, in a namespace it made
	// itself (unshare -n), listed first.
	for link, target := range map[string]string{"self/ns/net": "net:[4026531840]", "4242/ns/net": "net:[4026532999]", "100001/ns/net": "net:[4026533777]"} {
		mustMkdir(t, filepath.Dir(filepath.Join(w.proc, link)))
		if err := os.Symlink(target, filepath.Join(w.proc, link)); err != nil {
			t.Fatal(err)
		}
	}
	for pid, start := range map[string]string{"4242": "1000", "100001": "5000"} {
		cg := "12:memory:/kubepods/besteffort/pod" + string(w.pod.UID) + "/0123abcd\n"
		stat := pid + " (a (b) c) S 1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 " + start + " 1000 100\n"
		for name, data := range map[string]string{"cgroup": cg, "stat": stat} {
			if err := os.WriteFile(filepath.Join(w.proc, pid, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// start runs the agent until the test ends.
func (w *world) start(t *testing.T, probeFor time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Kube: cluster.Client, Node: w.f.Node, Namespace: w.kir, ProcRoot: w.proc,
			ProbeTimeout: 10 * time.Millisecond, ProbeEvery: 20 * time.Millisecond, ProbeFor: probeFor,
			Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), net: w.net,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// quarantine labels the pod with value and, if policy, applies kir's
// quarantine policy selecting it, annotated with extra.
func (w *world) quarantine(t *testing.T, value string, policy bool, extra map[string]string) {
	t.Helper()
	ctx := t.Context()
	if policy {
		annotations := map[string]string{action.AnnotationPod: w.pod.Namespace + "/" + w.pod.Name}
		for k, v := range extra {
			annotations[k] = v
		}
		pol := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: action.PolicyName(value), Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir, action.LabelQuarantine: value}, Annotations: annotations},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{action.LabelQuarantine: value}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			},
		}
		if _, err := cluster.Client.NetworkingV1().NetworkPolicies(w.pod.Namespace).Create(ctx, pol, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w.label(t, `{"metadata":{"labels":{"`+action.LabelQuarantine+`":"`+value+`"}}}`)
}

func (w *world) label(t *testing.T, patch string) {
	t.Helper()
	if _, err := cluster.Client.CoreV1().Pods(w.pod.Namespace).Patch(t.Context(), w.pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// report waits for the pod's report to satisfy ok.
func (w *world) report(t *testing.T, ok func(*Report) bool) *Report {
	t.Helper()
	var last *Report
	err := kubetest.Eventually(t.Context(), 20*time.Second, func(ctx context.Context) (bool, error) {
		l, err := cluster.Client.CoordinationV1().Leases(w.kir).Get(ctx, ReportName(string(w.pod.UID)), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		r, err := ReportOf(l)
		if err != nil {
			return false, err
		}
		last = r
		return ok(r), nil
	})
	if err != nil {
		t.Fatalf("the report never got there: %v; last %+v", err, last)
	}
	return last
}

// noReport checks that no report appears for a while.
func (w *world) noReport(t *testing.T) {
	t.Helper()
	time.Sleep(2 * time.Second)
	_, err := cluster.Client.CoordinationV1().Leases(w.kir).Get(t.Context(), ReportName(string(w.pod.UID)), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("a report exists (err %v); the agent must not act", err)
	}
}

// TestAgentConfirmsThenCuts: the agent reports probing while the pod
// still reaches the target, confirms once it does not, then cuts, in that
// order, and reports both.
func TestAgentConfirmsThenCuts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	w.start(t, time.Minute)
	w.quarantine(t, string(w.pod.UID), true, nil)
	r := w.report(t, func(r *Report) bool { return r.State == StateProbing && len(r.Probes) > 0 })
	if !r.ReachableBefore || w.net.cutCount() != 0 {
		t.Fatalf("while the pod reaches the target: %+v, %d cuts; want reachable and no cut", r, w.net.cutCount())
	}
	w.net.enforced.Store(true)
	r = w.report(t, (*Report).Final)
	if r.State != StateEnforced || r.EnforcedAt == nil || r.Cut == nil || r.Cut.TCP != 2 || r.Cut.UDP != 1 || r.Cut.Flows != 4 || r.Cut.Remaining != 0 {
		t.Fatalf("report %+v (cut %+v): want enforced, 2 TCP and 1 UDP cut, 4 flows deleted, none left", r, r.Cut)
	}
	if r.Cut.At.Before(*r.EnforcedAt) {
		t.Errorf("cut at %v, before the isolation was enforced at %v", r.Cut.At, r.EnforcedAt)
	}
	hb, err := cluster.Client.CoordinationV1().Leases(w.kir).Get(t.Context(), HeartbeatName(w.f.Node), metav1.GetOptions{})
	if err != nil || !Alive(hb, time.Now()) {
		t.Errorf("heartbeat of %s: %v, alive %v", w.f.Node, err, err == nil && Alive(hb, time.Now()))
	}
	if want := filepath.Join(w.proc, "4242", "ns", "net"); len(w.net.opened) != 1 || w.net.opened[0] != want {
		t.Errorf("opened %v, want only the sandbox's namespace %s", w.net.opened, want)
	}
	if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "1 other network namespaces") }) {
		t.Errorf("notes %q: want the pod's other namespace said", r.Notes)
	}
	if w.net.deleted[0].String() != w.pod.Status.PodIP {
		t.Errorf("conntrack deleted for %v, want the pod's IP %s", w.net.deleted, w.pod.Status.PodIP)
	}
}

// TestAgentIgnoresForgedQuarantines: a quarantine label without kir's
// policy (set by the pod's owner, or copied from another pod), or naming
// another pod, makes the agent do nothing.
func TestAgentIgnoresForgedQuarantines(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	w.net.enforced.Store(true)
	w.start(t, time.Minute)
	w.quarantine(t, string(w.pod.UID), false, nil) // no policy
	w.noReport(t)
	w.quarantine(t, "another-pods-uid", true, nil) // a policy, for another value
	w.noReport(t)
	if n := w.net.cutCount(); n != 0 {
		t.Errorf("the agent cut %d times on forged quarantines", n)
	}
}

// TestAgentKeepsSessionsWhenAsked: kir.dev/sessions: keep on the policy
// (--no-cut): confirmed, nothing cut, the sessions counted.
func TestAgentKeepsSessionsWhenAsked(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	w.start(t, time.Minute)
	w.quarantine(t, string(w.pod.UID), true, map[string]string{action.AnnotationSessions: action.SessionsKeep})
	w.report(t, func(r *Report) bool { return r.State == StateProbing && r.ReachableBefore })
	w.net.enforced.Store(true)
	r := w.report(t, (*Report).Final)
	if r.State != StateEnforced || r.Cut == nil || !r.Cut.Kept || r.Cut.Remaining != 3 || w.net.cutCount() != 0 {
		t.Fatalf("report %+v (cut %+v), %d cuts: want enforced, kept, 3 sessions open, no cut", r, r.Cut, w.net.cutCount())
	}
}

// TestAgentReportsNotEnforced: a pod that still reaches the target when
// the agent gives up is reported not enforced, and nothing is cut.
func TestAgentReportsNotEnforced(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	w.start(t, time.Second)
	w.quarantine(t, string(w.pod.UID), true, nil)
	r := w.report(t, (*Report).Final)
	if r.State != StateNotEnforced || r.Cut != nil || w.net.cutCount() != 0 {
		t.Fatalf("report %+v, %d cuts: want not-enforced, no cut", r, w.net.cutCount())
	}
	// The network plugin is fixed, and kir contain runs again: its
	// request on the policy is answered anew.
	w.net.enforced.Store(true)
	patch := `{"metadata":{"annotations":{"` + action.AnnotationConfirm + `":"run-2"}}}`
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(w.pod.Namespace).Patch(t.Context(), action.PolicyName(string(w.pod.UID)), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	r = w.report(t, func(r *Report) bool { return r.Request == "run-2" && r.Final() })
	if r.State != StateEnforced || r.Cut == nil || w.net.cutCount() != 1 {
		t.Fatalf("the second request's report %+v, %d cuts: want enforced (reachable before, from the first answer), cut once", r, w.net.cutCount())
	}
}

// TestAgentLeavesReleasedPods: releasing a pod while the agent probes
// stops its work: no cut, and its report is dropped.
func TestAgentLeavesReleasedPods(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	w.start(t, time.Minute)
	w.quarantine(t, string(w.pod.UID), true, nil)
	w.report(t, func(r *Report) bool { return r.State == StateProbing })
	w.label(t, `{"metadata":{"labels":{"`+action.LabelQuarantine+`":null}}}`)
	w.net.enforced.Store(true) // too late: the pod is released
	err := kubetest.Eventually(t.Context(), 20*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoordinationV1().Leases(w.kir).Get(ctx, ReportName(string(w.pod.UID)), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the released pod's report stays: %v", err)
	}
	time.Sleep(time.Second)
	if n := w.net.cutCount(); n != 0 {
		t.Errorf("the agent cut a released pod's sessions %d times", n)
	}
}

// TestAgentSkipsHostNetworkPods: no NetworkPolicy isolates a hostNetwork
// pod, and its sessions are the node's: skipped loudly, nothing cut.
func TestAgentSkipsHostNetworkPods(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	w.net.enforced.Store(true)
	w.start(t, time.Minute)
	w.quarantine(t, string(w.pod.UID), true, nil)
	r := w.report(t, (*Report).Final)
	if r.State != StateSkipped || len(r.Notes) == 0 || w.net.cutCount() != 0 {
		t.Fatalf("report %+v, %d cuts: want skipped with a note, no cut", r, w.net.cutCount())
	}
}

// TestAgentCannotConfirmWhatWasNeverReachable: a pod whose probes fail
// from the first, before its policy, proves nothing about the policy:
// unconfirmable, never enforced; its sessions are cut all the same.
func TestAgentCannotConfirmWhatWasNeverReachable(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	w.net.enforced.Store(true) // blocked before any policy
	w.start(t, time.Minute)
	w.quarantine(t, string(w.pod.UID), true, nil)
	r := w.report(t, (*Report).Final)
	if r.State != StateUnconfirmable || r.ReachableBefore || r.Cut == nil || w.net.cutCount() != 1 {
		t.Fatalf("report %+v, %d cuts: want unconfirmable, cut once", r, w.net.cutCount())
	}
}
