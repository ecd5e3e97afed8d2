package serve_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kir.dev/kir/collect"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/serve"
)

// TestAlertContainsPod: a Falco payload for a Running pod, posted with the
// token, is accepted (202) and contains the pod; the run is in the
// journal; a second alert for the same pod is a duplicate.
func TestAlertContainsPod(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2)
	r := newReceiver(t, receiverOpts{})
	pod := w.pods[0]
	code, body := r.post(t, alert(t, w.ns, pod.Name, "uuid-1"))
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	var resp serve.Response
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Matches) != 1 || resp.Matches[0].Playbook != "contain-pod" || resp.UUID != "uuid-1" {
		t.Errorf("response %+v, want one contain-pod match", resp)
	}
	waitIsolated(t, pod, 10*time.Second)

	if code, body := r.post(t, alert(t, w.ns, pod.Name, "uuid-2")); code != 202 {
		t.Fatalf("second POST: %d %s", code, body)
	}
	// Let the duplicate be handled, then count.
	waitFor(t, 10*time.Second, func() bool { return r.stats().Pending == 0 })
	runs := runsIn(t, r.state)
	if len(runs) != 1 || runs[0].Status != playbooks.RunSucceeded || runs[0].Playbook != "contain-pod" {
		t.Fatalf("runs %+v, want one succeeded contain-pod", runs)
	}
	if n := quarantineEvents(t, pod); n != 1 {
		t.Errorf("%d containments of the pod, want 1", n)
	}
	if got := runs[0].Params["name"]; got != pod.Name {
		t.Errorf("run's pod %v, want %s", got, pod.Name)
	}
	// The other replica of the Deployment is untouched.
	if n := quarantineEvents(t, w.pods[1]); n != 0 {
		t.Errorf("the sibling pod was contained")
	}
	// The sealed bundle holds the alert that started the run.
	var got struct{ Rule, UUID string }
	raw, err := os.ReadFile(filepath.Join(r.state, "evidence", runs[0].ID, filepath.FromSlash(collect.AlertFile)))
	if err == nil {
		err = json.Unmarshal(raw, &got)
	}
	if err != nil || got.Rule != "Drop and execute new binary in container" || got.UUID != "uuid-1" {
		t.Errorf("the bundle's %s: %+v, %v; want the posted alert", collect.AlertFile, got, err)
	}
}

// TestUnroutedAlert: an alert below Critical is recorded and acted on by
// no playbook.
func TestUnroutedAlert(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	r := newReceiver(t, receiverOpts{})
	body := strings.Replace(string(alert(t, w.ns, w.pods[0].Name, "uuid-low")), `"priority":"Critical"`, `"priority":"Notice"`, 1)
	code, out := r.post(t, []byte(body))
	if code != 202 || !strings.Contains(out, `"matches":[]`) {
		t.Fatalf("POST: %d %s", code, out)
	}
	waitFor(t, 5*time.Second, func() bool { return r.stats().Pending == 0 })
	if runs := runsIn(t, r.state); len(runs) != 0 {
		t.Errorf("a Notice alert ran %d playbooks", len(runs))
	}
}

// TestTwoReplicasOneContainment: two receivers on the same cluster get
// the same alert at once; exactly one contains the pod.
func TestTwoReplicasOneContainment(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	a := newReceiver(t, receiverOpts{identity: "replica-a", claims: true})
	b := newReceiver(t, receiverOpts{identity: "replica-b", claims: true})
	pod := w.pods[0]
	body := alert(t, w.ns, pod.Name, "uuid-shared")
	done := make(chan int, 2)
	for _, r := range []*receiver{a, b} {
		go func() {
			code, _ := r.post(t, body)
			done <- code
		}()
	}
	for range 2 {
		if code := <-done; code != 202 {
			t.Fatalf("POST: %d", code)
		}
	}
	waitIsolated(t, pod, 10*time.Second)
	waitFor(t, 20*time.Second, func() bool { return a.stats().Pending == 0 && b.stats().Pending == 0 })
	ra, rb := runsIn(t, a.state), runsIn(t, b.state)
	if len(ra)+len(rb) != 1 {
		t.Errorf("replica a ran %d, replica b %d playbooks; want 1 in all", len(ra), len(rb))
	}
	if n := quarantineEvents(t, pod); n != 1 {
		t.Errorf("%d containments, want 1", n)
	}
	// The replica that lost the claim had snapshotted the pod while it
	// claimed; its run, which changed nothing, left no bundle behind.
	if ba, bb := bundlesIn(t, a.state), bundlesIn(t, b.state); len(ba)+len(bb) != 1 {
		t.Errorf("evidence bundles: replica a %v, replica b %v; want 1 in all", ba, bb)
	}
}

func bundlesIn(t *testing.T, state string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(state, "evidence"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func waitFor(t testing.TB, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
