package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kir.dev/kir/internal/hmacsig"
	"kir.dev/kir/notify"
)

// receiver is a webhook receiver on 127.0.0.1 that verifies each
// request as kir serve's intake does (hmacsig.Verify) and records it.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	key []byte
	// status answers the n-th attempt (from 1) of a delivery id.
	status func(delivery string, attempt int) int

	mu       sync.Mutex
	attempts map[string]int   // per delivery id
	acked    map[string]int   // 2xx answers per delivery id
	messages []notify.Message // acknowledged, in order
	texts    []string         // Slack bodies, acknowledged
	bad      []string         // what failed verification
	raw      []signed         // acknowledged webhook requests
}

func newReceiver(t *testing.T, key []byte, status func(string, int) int) *receiver {
	r := &receiver{t: t, key: key, status: status, attempts: map[string]int{}, acked: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id := req.Header.Get(notify.HeaderDelivery)
	if r.key == nil { // Slack: {"text": ...}
		var s struct{ Text string }
		if err := json.Unmarshal(body, &s); err != nil {
			r.bad = append(r.bad, "not JSON: "+err.Error())
		}
		id = s.Text
	} else if _, err := hmacsig.Verify(r.key, req.Header.Get(hmacsig.HeaderTimestamp), req.Header.Get(hmacsig.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		r.bad = append(r.bad, err.Error())
	}
	r.attempts[id]++
	n := r.attempts[id]
	code := http.StatusOK
	if r.status != nil {
		r.mu.Unlock() // status may hang
		code = r.status(id, n)
		r.mu.Lock()
	}
	w.WriteHeader(code)
	if code/100 != 2 {
		return
	}
	r.acked[id]++
	if r.key == nil {
		r.texts = append(r.texts, id)
		return
	}
	r.raw = append(r.raw, signed{header: req.Header.Clone(), body: body})
	var m notify.Message
	if err := json.Unmarshal(body, &m); err != nil {
		r.bad = append(r.bad, "not a Message: "+err.Error())
	}
	if m.DeliveryID != id {
		r.bad = append(r.bad, "header delivery id "+id+" != body's "+m.DeliveryID)
	}
	r.messages = append(r.messages, m)
}

// signed is a request as received.
type signed struct {
	header http.Header
	body   []byte
}

// events counts the events acknowledged.
func (r *receiver) events() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.messages {
		n += len(m.Events)
	}
	return n + len(r.texts)
}

func (r *receiver) snapshot() (msgs []notify.Message, attempts, acked map[string]int, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	attempts, acked = map[string]int{}, map[string]int{}
	for k, v := range r.attempts {
		attempts[k] = v
	}
	for k, v := range r.acked {
		acked[k] = v
	}
	return append([]notify.Message(nil), r.messages...), attempts, acked, append([]string(nil), r.bad...)
}

// writeFile writes a secret file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var testKey = []byte("0123456789abcdef-test-key")

func webhookSink(t *testing.T, name string, r *receiver) notify.SinkConfig {
	return notify.SinkConfig{
		Name:    name,
		Type:    notify.TypeWebhook,
		URLFile: writeFile(t, name+"-url", r.srv.URL+"/hook"),
		KeyFile: writeFile(t, name+"-key", string(r.key)),
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start opens an outbox in dir and runs it until the test ends.
func start(t *testing.T, dir string, c *notify.Config, opts ...notify.Option) *notify.Outbox {
	t.Helper()
	ob, err := notify.Open(dir, c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { ob.Run(ctx); close(ran) }()
	t.Cleanup(func() {
		cancel()
		<-ran
		if err := ob.Close(); err != nil {
			t.Error(err)
		}
	})
	return ob
}

func fast() notify.Option { return notify.WithBackoff(10*time.Millisecond, 50*time.Millisecond) }

func event(kind notify.Kind, run string) notify.Event {
	e := notify.Event{
		Kind:     kind,
		Run:      run,
		Incident: "inc-" + run,
		Playbook: "contain-pod",
		Rule:     "contain-critical",
		Alert:    &notify.Alert{Rule: "Terminal shell in container", Priority: "Critical", Time: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)},
		Pods:     []notify.Pod{{Namespace: "shop", Name: "web-" + run}},
		Nodes:    []string{"node-1"},
		Evidence: &notify.Evidence{Bundle: "/var/lib/kir/evidence/" + run, Replica: "kir-serve-0"},
		Time:     time.Date(2026, 12, 6, 10, 0, 1, 0, time.UTC),
	}
	switch kind {
	case notify.KindHeld:
		e.Held = &notify.Held{Step: "revoke-serviceaccount", Reason: "needs approval"}
	case notify.KindFailed, notify.KindRefused:
		e.Reason = "something " + string(kind)
	}
	return e
}
