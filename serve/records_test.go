package serve_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/record"
)

// TestAcceptedAlertsOutliveTheirReplica: replica a answers 202 for 20
// alerts on 20 pods and is SIGKILLed at once; its state directory (spool,
// journals, evidence: an emptyDir) is deleted. Replica b takes over the
// records a wrote before each 202 once a's claims expire, and contains
// all 20 pods, each once; every record ends Succeeded.
func TestAcceptedAlertsOutliveTheirReplica(t *testing.T) {
	t.Parallel()
	const n = 20
	w := newWorld(t, n)
	stateA, stateB := t.TempDir(), t.TempDir()
	a := startServe(t, stateA, "replica-a", "--workers", "1")
	startServe(t, stateB, "replica-b")
	for i, pod := range w.pods {
		if code := a.post(t, alert(t, w.ns, pod.Name, fmt.Sprintf("uuid-outlive-%d", i))); code != 202 {
			t.Fatalf("POST %d to replica a: %d", i, code)
		}
	}
	a.kill()
	if err := os.RemoveAll(stateA); err != nil {
		t.Fatal(err)
	}

	for _, pod := range w.pods {
		waitIsolated(t, pod, 90*time.Second)
	}
	store := record.NewStore(cluster.Client, leaseNamespace(t))
	var recs []record.Response
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		recs, err = store.List(ctx, "")
		if err != nil || len(recs) != n {
			return false, err
		}
		for _, r := range recs {
			if r.Status.Phase != record.Succeeded {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for _, r := range recs {
			t.Logf("record %s: %s %s (%s)", r.Name, r.Status.Phase, r.Status.Message, r.Spec.Target)
		}
		t.Fatalf("want %d records, all Succeeded: %v", n, err)
	}
	takenOver := 0
	for _, r := range recs {
		if r.Status.Claim != nil && r.Status.Claim.Takeovers > 0 {
			takenOver++
		}
	}
	t.Logf("%d of %d records taken over by replica b", takenOver, n)
	if takenOver == 0 {
		t.Error("no record was taken over: replica a ran them all before it was killed; the test proves nothing")
	}
	for _, pod := range w.pods {
		if c := quarantineEvents(t, pod); c > 1 {
			t.Errorf("pod %s contained %d times, want once", pod.Name, c)
		}
	}
}

// TestBudgetHoldsAcrossReplicas: 50 alerts on 50 pods, posted to two
// replicas, with a budget of 20 pods: exactly 20 are contained and 30
// held, listed by kir runs list --held; each held one is contained once a
// person approves it (kir runs approve), and none twice.
func TestBudgetHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const n, limit = 50, 20
	w := newWorld(t, n)
	budgetFlags := []string{"--budget-pods", fmt.Sprint(limit)}
	a := startServe(t, t.TempDir(), "replica-a", budgetFlags...)
	b := startServe(t, t.TempDir(), "replica-b", budgetFlags...)
	for i, pod := range w.pods {
		p := a
		if i%2 == 1 {
			p = b
		}
		if code := p.post(t, alert(t, w.ns, pod.Name, fmt.Sprintf("uuid-budget-%d", i))); code != 202 {
			t.Fatalf("POST %d: %d", i, code)
		}
	}
	ns := leaseNamespace(t)
	store := record.NewStore(cluster.Client, ns)
	phases := func(ctx context.Context) (map[string][]record.Response, error) {
		recs, err := store.List(ctx, "")
		out := map[string][]record.Response{}
		for _, r := range recs {
			out[r.Status.Phase] = append(out[r.Status.Phase], r)
		}
		return out, err
	}
	var by map[string][]record.Response
	err := kubetest.Eventually(t.Context(), 90*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		by, err = phases(ctx)
		return err == nil && len(by[record.Succeeded]) == limit && len(by[record.Held]) == n-limit, nil
	})
	if err != nil {
		t.Fatalf("records by phase: %d succeeded, %d held, %d running, %d accepted, %d failed; want %d and %d: %v",
			len(by[record.Succeeded]), len(by[record.Held]), len(by[record.Running]), len(by[record.Accepted]), len(by[record.Failed]), limit, n-limit, err)
	}
	contained := 0
	for _, pod := range w.pods {
		contained += min(1, quarantineEvents(t, pod))
	}
	if contained != limit {
		t.Errorf("%d pods contained, want the budget's %d", contained, limit)
	}

	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	listed := kir.MustRun(t, "runs", "list", "--held", "--kir-namespace", ns)
	for _, r := range by[record.Held] {
		if !strings.Contains(listed.Stdout, r.Name) {
			t.Errorf("kir runs list --held does not list %s (%s)", r.Name, r.Spec.Target)
		}
		kir.MustRun(t, "runs", "approve", r.Name, "--kir-namespace", ns, "--reason", "checked")
	}
	for _, pod := range w.pods {
		waitIsolated(t, pod, 60*time.Second)
	}
	err = kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		by, err = phases(ctx)
		return err == nil && len(by[record.Succeeded]) == n, nil
	})
	if err != nil {
		t.Errorf("after the approvals, %d of %d records succeeded: %v", len(by[record.Succeeded]), n, err)
	}
	for _, pod := range w.pods {
		if c := quarantineEvents(t, pod); c != 1 {
			t.Errorf("pod %s contained %d times, want once", pod.Name, c)
		}
	}
}
