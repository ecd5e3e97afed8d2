package serve_test

import (
	"context"
	"fmt"
	"os"
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
