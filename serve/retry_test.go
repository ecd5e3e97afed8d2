package serve_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kir.dev/kir/action"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/serve"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// unavailablePolicyWrites is a client of the test cluster in front of
// which every NetworkPolicy write is answered 503 Service Unavailable, as
// a proxy (or an API server restarting) answers: everything else reaches
// the API server. It counts the writes it refused.
func unavailablePolicyWrites(t *testing.T) (kubernetes.Interface, *atomic.Int32) {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	refused := &atomic.Int32{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet || !strings.Contains(r.URL.Path, "/networkpolicies") {
				return rt.RoundTrip(r)
			}
			if r.Body != nil {
				r.Body.Close()
			}
			refused.Add(1)
			return &http.Response{
				StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("upstream unavailable\n")), Request: r,
			}, nil
		})
	})
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube, refused
}

// claimOf finds the claim (Lease) that records run.
func claimOf(t *testing.T, run string) *coordinationv1.Lease {
	t.Helper()
	list, err := cluster.Client.CoordinationV1().Leases("default").List(context.Background(), metav1.ListOptions{LabelSelector: serve.LabelClaim + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if list.Items[i].Annotations[serve.AnnotationRun] == run {
			return &list.Items[i]
		}
	}
	t.Fatalf("no claim records run %s", run)
	return nil
}

// TestTransientFailureResumedByOtherReplica: the first run for a pod fails
// on replica a with a 503 on its NetworkPolicy write. Its claim is left to
// be retried, not finished: an alert within the backoff is a duplicate; the
// next after it, sent to replica b (which shares a's state directory, as a
// shared volume does), resumes and finishes the same run, with the same
// evidence bundle; the pod is contained once, its node cordoned once.
func TestTransientFailureResumedByOtherReplica(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2)
	pod := w.pods[0]
	shared := t.TempDir()
	broken, refused := unavailablePolicyWrites(t)
	const backoff = 4 * time.Second
	a := newReceiver(t, receiverOpts{identity: "retry-a", claims: true, runs: shared, kube: broken, retryBackoff: backoff})
	b := newReceiver(t, receiverOpts{identity: "retry-b", claims: true, runs: shared, retryBackoff: backoff})

	if code, body := a.post(t, alert(t, w.ns, pod.Name, "uuid-retry-1")); code != 202 {
		t.Fatalf("POST to a: %d %s", code, body)
	}
	waitFor(t, 60*time.Second, func() bool { return a.stats().Pending == 0 })
	runs := runsIn(t, shared)
	if len(runs) != 1 || runs[0].Status == playbooks.RunSucceeded || !strings.HasSuffix(runs[0].ID, ".retry-a") {
		t.Fatalf("after the 503: runs %+v; want one of replica a's, not succeeded", runs)
	}
	first := runs[0]
	if refused.Load() == 0 {
		t.Fatal("no NetworkPolicy write was refused: the test injected nothing")
	}
	claim := claimOf(t, first.ID)
	if claim.Annotations[serve.AnnotationFinished] != "" || claim.Annotations[serve.AnnotationAttempts] != "1" {
		t.Fatalf("the claim of a transient failure: %v; want it unfinished, after 1 attempt", claim.Annotations)
	}
	retryAt, err := time.Parse(time.RFC3339Nano, claim.Annotations[serve.AnnotationRetryAt])
	if err != nil {
		t.Fatalf("the claim's retry time: %v", err)
	}

	// Within the backoff: a duplicate, on the other replica too.
	if code, body := b.post(t, alert(t, w.ns, pod.Name, "uuid-retry-2")); code != 202 {
		t.Fatalf("POST to b: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, func() bool { return b.stats().Pending == 0 })
	if time.Now().Before(retryAt) {
		if runs := runsIn(t, shared); len(runs) != 1 || runs[0].Resumes != 0 {
			t.Fatalf("an alert within the backoff ran: %+v", runs)
		}
	} else {
		t.Log("the backoff was over before replica b handled the second alert: the test proves less")
	}
	for time.Now().Before(retryAt) {
		time.Sleep(time.Until(retryAt) + 50*time.Millisecond)
	}

	// After it: replica b resumes replica a's run.
	if code, body := b.post(t, alert(t, w.ns, pod.Name, "uuid-retry-3")); code != 202 {
		t.Fatalf("POST to b: %d %s", code, body)
	}
	waitIsolated(t, pod, 30*time.Second)
	waitFor(t, 60*time.Second, func() bool { return b.stats().Pending == 0 })
	runs = runsIn(t, shared)
	if len(runs) != 1 || runs[0].ID != first.ID || runs[0].Resumes != 1 || runs[0].Incident != first.Incident {
		t.Fatalf("after the retry: runs %+v; want %s alone, resumed once", runs, first.ID)
	}
	if runs[0].Status != playbooks.RunSucceeded {
		t.Errorf("the resumed run: %s %s; want it succeeded", runs[0].Status, runs[0].Error)
	}
	claim = claimOf(t, first.ID)
	if claim.Annotations[serve.AnnotationFinished] == "" || claim.Annotations[serve.AnnotationRetryAt] != "" {
		t.Errorf("the claim after the retry: %v; want it finished", claim.Annotations)
	}
	if got := bundlesIn(t, shared); len(got) != 1 || got[0] != first.ID {
		t.Errorf("evidence bundles %v, want the run's one, %s", got, first.ID)
	}

	// Contained once: one policy, one label, one Event; the node cordoned once.
	ctx := context.Background()
	policies, err := cluster.Client.NetworkingV1().NetworkPolicies(w.ns).List(ctx, metav1.ListOptions{LabelSelector: action.LabelManagedBy + "=" + action.ManagedByKir})
	if err != nil {
		t.Fatal(err)
	}
	if len(policies.Items) != 1 {
		t.Errorf("%d kir policies in the namespace, want 1", len(policies.Items))
	}
	got, err := cluster.Client.CoreV1().Pods(w.ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Labels[action.LabelQuarantine]; v != action.QuarantineValue(pod.UID) {
		t.Errorf("the pod's quarantine label %q", v)
	}
	if n := quarantineEvents(t, pod); n != 1 {
		t.Errorf("%d containments of the pod, want 1", n)
	}
	if n := quarantineEvents(t, w.pods[1]); n != 0 {
		t.Errorf("the sibling pod was contained")
	}
	node, err := cluster.Client.CoreV1().Nodes().Get(ctx, w.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := cluster.Client.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + w.node + ",reason=Quarantined",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !node.Spec.Unschedulable || len(events.Items) != 1 {
		t.Errorf("node %s: unschedulable %v, cordoned %d times; want once", w.node, node.Spec.Unschedulable, len(events.Items))
	}

	// The key's window has started: a later alert, to either, is a duplicate.
	if code, body := a.post(t, alert(t, w.ns, pod.Name, "uuid-retry-4")); code != 202 {
		t.Fatalf("POST to a: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, func() bool { return a.stats().Pending == 0 })
	if runs := runsIn(t, shared); len(runs) != 1 || runs[0].Resumes != 1 {
		t.Errorf("an alert after the finished retry ran again: %+v", runs)
	}
}

// TestTransientFailureRetriedWithoutSharedState: replicas with state of
// their own (an emptyDir each) cannot read each other's journals: the
// replica that takes the retry over starts a run of its own under the same
// claim, which counts the same attempts; the pod is still contained once.
func TestTransientFailureRetriedWithoutSharedState(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	pod := w.pods[0]
	broken, refused := unavailablePolicyWrites(t)
	const backoff = 2 * time.Second
	a := newReceiver(t, receiverOpts{identity: "own-a", claims: true, kube: broken, retryBackoff: backoff})
	b := newReceiver(t, receiverOpts{identity: "own-b", claims: true, retryBackoff: backoff})

	if code, body := a.post(t, alert(t, w.ns, pod.Name, "uuid-own-1")); code != 202 {
		t.Fatalf("POST to a: %d %s", code, body)
	}
	waitFor(t, 60*time.Second, func() bool { return a.stats().Pending == 0 })
	ra := runsIn(t, a.state)
	if len(ra) != 1 || ra[0].Status == playbooks.RunSucceeded || refused.Load() == 0 {
		t.Fatalf("after the 503: replica a's runs %+v (%d writes refused); want one, not succeeded", ra, refused.Load())
	}
	retryAt, err := time.Parse(time.RFC3339Nano, claimOf(t, ra[0].ID).Annotations[serve.AnnotationRetryAt])
	if err != nil {
		t.Fatalf("the claim's retry time: %v", err)
	}
	for time.Now().Before(retryAt) {
		time.Sleep(time.Until(retryAt) + 50*time.Millisecond)
	}

	if code, body := b.post(t, alert(t, w.ns, pod.Name, "uuid-own-2")); code != 202 {
		t.Fatalf("POST to b: %d %s", code, body)
	}
	waitIsolated(t, pod, 30*time.Second)
	waitFor(t, 60*time.Second, func() bool { return b.stats().Pending == 0 })
	rb := runsIn(t, b.state)
	if len(rb) != 1 || rb[0].Status != playbooks.RunSucceeded {
		t.Fatalf("replica b's runs %+v; want one of its own, succeeded", rb)
	}
	claim := claimOf(t, rb[0].ID)
	if claim.Annotations[serve.AnnotationFinished] == "" || claim.Annotations[serve.AnnotationAttempts] != "1" {
		t.Errorf("the claim after b's run: %v; want it finished, counting a's attempt", claim.Annotations)
	}
	if n := quarantineEvents(t, pod); n != 1 {
		t.Errorf("%d containments of the pod, want 1", n)
	}
	if ra := runsIn(t, a.state); len(ra) != 1 || ra[0].Resumes != 0 {
		t.Errorf("replica a's runs after b's: %+v; want its one, not resumed", ra)
	}
}
