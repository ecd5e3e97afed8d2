package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kir.dev/kir/internal/hmacsig"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/notify"
	"kir.dev/kir/record"
)

// notified is a receiver of kir's webhook notifications: it checks each
// signature and keeps the messages.
type notified struct {
	key []byte
	mu  sync.Mutex
	got []notify.Message
	bad []string
}

func (n *notified) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := hmacsig.Verify(n.key, r.Header.Get(hmacsig.HeaderTimestamp), r.Header.Get(hmacsig.HeaderSignature), body, time.Now(), time.Minute); err != nil {
		n.bad = append(n.bad, err.Error())
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m notify.Message
	if err := json.Unmarshal(body, &m); err != nil || m.DeliveryID == "" || m.DeliveryID != r.Header.Get(notify.HeaderDelivery) {
		n.bad = append(n.bad, fmt.Sprintf("message %s (%v), delivery header %q", body, err, r.Header.Get(notify.HeaderDelivery)))
	}
	n.got = append(n.got, m)
}

// kinds counts the events received by kind.
func (n *notified) kinds() map[notify.Kind]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[notify.Kind]int{}
	for _, m := range n.got {
		for _, e := range m.Events {
			out[e.Kind]++
		}
	}
	return out
}

// TestServeNotifies: kir serve tells a signed webhook of each run it
// finished, held (over the budget, with the approve command), failed
// (its pod does not exist) and refused (a pod of kube-system: refused
// before the budget counts it), once each, with delivery ids.
func TestServeNotifies(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2)
	dir := t.TempDir()
	recv := &notified{key: []byte("notification-key-0123456789")}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	files := map[string]string{"url": srv.URL, "key": string(recv.key), "token": token}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	routing := filepath.Join(dir, "routing.yaml")
	cfg := fmt.Sprintf(`apiVersion: kir.dev/v1alpha1
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
`, filepath.Join(dir, "url"), filepath.Join(dir, "key"), filepath.Join(dir, "token"))
	if err := os.WriteFile(routing, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, t.TempDir(), "replica-n", "--config", routing, "--budget-pods", "2")
	posts := []struct{ ns, pod string }{
		{w.ns, w.pods[0].Name},            // finished
		{w.ns, "no-such-pod"},             // failed
		{"kube-system", "kube-apiserver"}, // refused
	}
	for i, a := range posts {
		if code := p.post(t, alert(t, a.ns, a.pod, fmt.Sprintf("uuid-notify-%d", i))); code != 202 {
			t.Fatalf("POST %d: %d", i, code)
		}
	}
	waitIsolated(t, w.pods[0], 30*time.Second)
	time.Sleep(time.Second)                                                                 // the failed run took the budget's second slot
	if code := p.post(t, alert(t, w.ns, w.pods[1].Name, "uuid-notify-held")); code != 202 { // over the budget of 2
		t.Fatalf("POST: %d", code)
	}
	want := map[notify.Kind]int{notify.KindFinished: 1, notify.KindFailed: 1, notify.KindRefused: 1, notify.KindHeld: 1}
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		got := recv.kinds()
		for k, n := range want {
			if got[k] < n {
				return false, nil
			}
		}
		return true, nil
	})
	time.Sleep(2 * time.Second) // anything more would be a duplicate
	got := recv.kinds()
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events received by kind %v, want %v (%v)", got, want, err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.bad) > 0 {
		t.Errorf("bad deliveries: %v", recv.bad)
	}
	ids := map[string]bool{}
	for _, m := range recv.got {
		if ids[m.DeliveryID] {
			t.Errorf("delivery id %s used twice", m.DeliveryID)
		}
		ids[m.DeliveryID] = true
		for _, e := range m.Events {
			if e.Kind == notify.KindHeld && (e.Held == nil || e.Held.Approve == "") {
				t.Errorf("held event without the approve command: %+v", e)
			}
		}
	}
}

// notifyRouting writes a routing config whose one webhook sink posts to
// url, signed with key, and returns its path.
func notifyRouting(t *testing.T, url string, key []byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range map[string]string{"url": url, "key": string(key), "token": token} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`apiVersion: kir.dev/v1alpha1
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
`, filepath.Join(dir, "url"), filepath.Join(dir, "key"), filepath.Join(dir, "token"))
	routing := filepath.Join(dir, "routing.yaml")
	if err := os.WriteFile(routing, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return routing
}

// TestHeldRecordOutlivesItsOutbox: a replica holds a run and dies before
// its notification left (its receiver hangs), its state directory lost.
// Another replica adopts the held record and sends the held event, with
// the approve command; when the hold expires unanswered, it says so.
func TestHeldRecordOutlivesItsOutbox(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	ns := leaseNamespace(t)
	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	kir.MustRun(t, "runs", "pause", "--kir-namespace", ns)
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(hang) })
	recv := &notified{key: []byte("notification-key-0123456789")}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)

	stateA := t.TempDir()
	a := startServe(t, stateA, "replica-lost", "--config", notifyRouting(t, hanging.URL, recv.key), "--hold-for", "15s")
	if code := a.post(t, alert(t, w.ns, w.pods[0].Name, "uuid-adopt")); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	store := record.NewStore(cluster.Client, ns)
	held := waitRecords(t, store, 1, record.Held)[0]
	a.kill()
	if err := os.RemoveAll(stateA); err != nil {
		t.Fatal(err)
	}
	startServe(t, t.TempDir(), "replica-adopts", "--config", notifyRouting(t, srv.URL, recv.key))

	var got []notify.Event
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(context.Context) (bool, error) {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		got = got[:0]
		for _, m := range recv.got {
			got = append(got, m.Events...)
		}
		return len(got) >= 2, nil
	})
	if err != nil {
		t.Fatalf("events received: %+v; want the held one again and its expiry: %v", got, err)
	}
	if e := got[0]; e.Kind != notify.KindHeld || e.Run != held.Name || e.Held == nil || !strings.Contains(e.Held.Approve, "kir runs approve "+held.Name) {
		t.Errorf("first event: %+v, want record %s held with its approve command", e, held.Name)
	}
	if e := got[1]; e.Kind != notify.KindRefused || e.Run != held.Name || !strings.Contains(e.Reason, "expired") {
		t.Errorf("second event: %+v, want record %s expired", e, held.Name)
	}
	rec, err := store.Get(t.Context(), held.Name)
	if err != nil || rec.Status.Phase != record.Expired || rec.Status.Claim == nil || rec.Status.Claim.Holder != "replica-adopts" {
		t.Errorf("record after: %+v (%v); want Expired, adopted by replica-adopts", rec.Status, err)
	}
	if quarantineEvents(t, w.pods[0]) != 0 {
		t.Error("a held run acted")
	}
}
