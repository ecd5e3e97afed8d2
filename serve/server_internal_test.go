package serve

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"kir.dev/kir/falco"
)

// Evidence collection waits while a run holds a worker (isolating), an
// alert waits in the queue or has just come in; other steps never wait.
func TestCollectionYields(t *testing.T) {
	s := &server{workers: make(chan struct{}, 1)}
	gate := s.collectGate(2)
	ctx := context.Background()

	start := func(action string) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, release, err := gate(ctx, action)
			if err != nil {
				t.Errorf("%s: %v", action, err)
				return
			}
			release()
		}()
		return done
	}
	held := func(what string, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
			t.Fatalf("collection started while %s", what)
		case <-time.After(150 * time.Millisecond):
		}
	}
	goes := func(what string, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("collection still held %s", what)
		}
	}

	s.workers <- struct{}{} // a run isolating
	goes("for an isolation step", start("contain.isolate-pod"))
	collect := start("collect.pod")
	held("a run was isolating", collect)
	<-s.workers
	s.queued.Store(1)
	held("an alert was queued", collect)
	s.queued.Store(0)
	s.lastAlert.Store(time.Now().Add(time.Hour).UnixNano()) // one keeps coming
	held("alerts were coming in", collect)
	s.lastAlert.Store(time.Now().UnixNano())
	goes("once alerts stopped coming", collect)
	goes("when nothing else goes on", start("collect.seal"))

	// A cancelled wait gives its slot back.
	s.workers <- struct{}{} // a run isolating
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, _, err := gate(cctx, "collect.pod"); errc <- err }()
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled wait for collection returned no error")
	}
	<-s.workers
	both := make(chan struct{})
	go func() {
		defer close(both)
		var releases []func()
		for range 2 { // both slots at once: none leaked
			_, release, err := gate(ctx, "collect.pod")
			if err != nil {
				t.Error(err)
				return
			}
			releases = append(releases, release)
		}
		for _, r := range releases {
			r()
		}
	}()
	goes("after a cancelled wait", both)
}

// A kept alert reads back as json.Marshal would have written it.
func TestRecordEncode(t *testing.T) {
	rec := spooled{
		Received: time.Date(2026, 11, 25, 20, 45, 12, 123456789, time.UTC),
		Alert:    json.RawMessage(" {\"rule\": \"R\",\n \"output_fields\": {\"k8s.pod.name\": \"web\"}}\n"),
		Matches:  []falco.Match{{Rule: "contain-critical", Playbook: "contain-pod", Key: "contain-pod:ns/web", Params: map[string]any{"name": "web"}}},
	}
	raw, err := rec.encode()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rec)
	var got, wanted any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	_ = json.Unmarshal(want, &wanted)
	if !reflect.DeepEqual(got, wanted) {
		t.Fatalf("encode gave %s, json.Marshal %s", raw, want)
	}
}
