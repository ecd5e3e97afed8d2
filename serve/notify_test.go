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
	"sync"
	"testing"
	"time"

	"kir.dev/kir/internal/hmacsig"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/notify"
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
