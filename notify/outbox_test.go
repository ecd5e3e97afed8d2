package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/notify"
)

// One signed message per event, each with its own delivery id, a
// signature the intake's verification accepts, and the held event's
// approve and deny commands.
func TestWebhookOneSignedMessagePerEvent(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, testKey, nil)
	c := &notify.Config{Sinks: []notify.SinkConfig{webhookSink(t, "oncall", r)}}
	ob := start(t, t.TempDir(), c, fast())
	kinds := []notify.Kind{notify.KindHeld, notify.KindFinished, notify.KindFailed, notify.KindRefused}
	for i, k := range kinds {
		if err := ob.Enqueue(t.Context(), event(k, "run-"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "4 events delivered", func() bool { return r.events() == 4 })
	msgs, attempts, _, bad := r.snapshot()
	if len(bad) > 0 {
		t.Fatalf("refused by the intake's verification: %v", bad)
	}
	if len(msgs) != 4 || len(attempts) != 4 {
		t.Fatalf("%d messages with %d delivery ids, want 4 and 4", len(msgs), len(attempts))
	}
	// The format, pinned apart from the code both sides share:
	// hex HMAC-SHA256 over timestamp "." body, timestamp in Unix seconds.
	r.mu.Lock()
	for _, req := range r.raw {
		ts := req.header.Get("X-Kir-Timestamp")
		mac := hmac.New(sha256.New, testKey)
		mac.Write([]byte(ts + "." + string(req.body)))
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); req.header.Get("X-Kir-Signature") != want {
			t.Errorf("X-Kir-Signature %q, want %q", req.header.Get("X-Kir-Signature"), want)
		}
		if secs, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(secs, 0)).Abs() > time.Minute {
			t.Errorf("X-Kir-Timestamp %q is not the Unix time", ts)
		}
	}
	r.mu.Unlock()
	var got []notify.Kind
	for _, m := range msgs {
		if m.APIVersion != notify.APIVersion || m.Kind != notify.MessageKind || m.Digest != nil || len(m.Events) != 1 {
			t.Errorf("message %+v: want one event, no digest", m)
			continue
		}
		e := m.Events[0]
		got = append(got, e.Kind)
		if e.ID == "" || e.Pods[0].Name != "web-"+e.Run || e.Evidence.Replica != "kir-serve-0" || e.Alert.Priority != "Critical" {
			t.Errorf("event lost fields: %+v", e)
		}
		if e.Kind == notify.KindHeld {
			want := &notify.Held{Step: "revoke-serviceaccount", Reason: "needs approval",
				Approve: "kir runs approve " + e.Run, Deny: "kir runs deny " + e.Run + " --reason '...'"}
			if diff := cmp.Diff(want, e.Held); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
		}
	}
	if !slices.Equal(sortKinds(got), sortKinds(kinds)) {
		t.Errorf("kinds %v, want %v", got, kinds)
	}
}

func sortKinds(k []notify.Kind) []notify.Kind {
	k = slices.Clone(k)
	slices.Sort(k)
	return k
}

// A receiver that answers 500 twice, then 200, gets each message
// acknowledged once, after 3 attempts with one delivery id; nothing is
// sent again after a restart.
func TestRetryUntilAcknowledged(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, testKey, func(_ string, n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	var sent, failed atomic.Int64
	m := notify.Metrics{
		Sent:   func(_ string, n int) { sent.Add(int64(n)) },
		Failed: func(string) { failed.Add(1) },
	}
	c := &notify.Config{Sinks: []notify.SinkConfig{webhookSink(t, "oncall", r)}}
	dir := t.TempDir()
	ob, err := notify.Open(dir, c, fast(), notify.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"r1", "r2", "r3"} {
		if err := ob.Enqueue(t.Context(), event(notify.KindFinished, run)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { ob.Run(ctx); close(ran) }()
	eventually(t, 10*time.Second, "3 events acknowledged", func() bool { return sent.Load() == 3 && ob.Pending() == 0 })
	cancel()
	<-ran
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	_, attempts, acked, bad := r.snapshot()
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	want := map[string]int{}
	for id := range attempts {
		want[id] = 3
	}
	if len(want) != 3 {
		t.Fatalf("%d delivery ids, want 3: %v", len(want), attempts)
	}
	if diff := cmp.Diff(want, attempts); diff != "" {
		t.Errorf("attempts per delivery id (-want +got):\n%s", diff)
	}
	for id := range want {
		want[id] = 1
	}
	if diff := cmp.Diff(want, acked); diff != "" {
		t.Errorf("acknowledged per delivery id (-want +got):\n%s", diff)
	}
	if failed.Load() != 6 {
		t.Errorf("%d failed attempts counted, want 6", failed.Load())
	}
	// Reopened, the outbox has nothing left to send.
	ob, err = notify.Open(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if n := ob.Pending(); n != 0 {
		t.Errorf("%d pending after a restart, want 0", n)
	}
}

// A receiver that never answers neither slows Enqueue nor keeps another
// sink from its messages.
func TestHangingSink(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := newReceiver(t, testKey, func(string, int) int { <-release; return http.StatusOK })
	t.Cleanup(func() { close(release) }) // before hang's server closes: cleanups run last first
	ok := newReceiver(t, testKey, nil)
	hs := webhookSink(t, "hangs", hang)
	c := &notify.Config{
		Sinks:  []notify.SinkConfig{hs, webhookSink(t, "answers", ok)},
		Digest: notify.DigestConfig{After: 100},
	}
	ob := start(t, t.TempDir(), c, fast())
	const n = 40
	took := make([]time.Duration, n)
	began := time.Now()
	for i := range n {
		t0 := time.Now()
		if err := ob.Enqueue(t.Context(), event(notify.KindHeld, "run-"+string(rune('A'+i)))); err != nil {
			t.Fatal(err)
		}
		took[i] = time.Since(t0)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("Enqueue with a hanging sink: p50 %s, p90 %s, max %s", took[n/2], took[n*9/10], took[n-1])
	if took[n*9/10] >= 10*time.Millisecond {
		t.Errorf("Enqueue p90 %s, want < 10ms", took[n*9/10])
	}
	if took[n-1] >= time.Second {
		t.Errorf("Enqueue max %s: it waited on the network", took[n-1])
	}
	// The answering sink gets all 40 while the other's first attempt
	// still hangs (its timeout is 5s).
	eventually(t, 4*time.Second, "the answering sink got every event", func() bool { return ok.events() == n })
	if _, attempts, acked, _ := hang.snapshot(); len(acked) != 0 || len(attempts) > 1 {
		t.Errorf("hanging sink: %d attempts, %d acknowledged; want 1 hanging", len(attempts), len(acked))
	}
	if since := time.Since(began); since > 4*time.Second {
		t.Errorf("took %s", since)
	}
}

// Events enqueued and never sent (the process killed) are sent after
// the outbox is opened again, with their delivery ids, and so are
// messages whose attempts failed before the kill.
func TestRestartDelivers(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	r := newReceiver(t, testKey, func(string, int) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	c := &notify.Config{Sinks: []notify.SinkConfig{webhookSink(t, "oncall", r)}}
	dir := t.TempDir()

	// First process: enqueues, never runs.
	ob, err := notify.Open(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"r1", "r2"} {
		if err := ob.Enqueue(t.Context(), event(notify.KindHeld, run)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	// Second: tries against a receiver that is down, and is stopped.
	ob, err = notify.Open(dir, c, fast())
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(t.Context(), event(notify.KindFailed, "r3")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { ob.Run(ctx); close(ran) }()
	eventually(t, 10*time.Second, "3 messages tried", func() bool { _, a, _, _ := r.snapshot(); return len(a) == 3 })
	cancel()
	<-ran
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	_, tried, _, _ := r.snapshot()

	// Third: the receiver is up; everything arrives, once.
	up.Store(true)
	ob = start(t, dir, c, fast())
	eventually(t, 10*time.Second, "3 events delivered after the restart", func() bool { return r.events() == 3 && ob.Pending() == 0 })
	msgs, _, acked, bad := r.snapshot()
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	var runs []string
	for _, m := range msgs {
		runs = append(runs, m.Events[0].Run)
		if tried[m.DeliveryID] == 0 {
			t.Errorf("delivery id %s of run %s changed across the restart", m.DeliveryID, m.Events[0].Run)
		}
		if acked[m.DeliveryID] != 1 {
			t.Errorf("delivery %s acknowledged %d times", m.DeliveryID, acked[m.DeliveryID])
		}
	}
	slices.Sort(runs)
	if !slices.Equal(runs, []string{"r1", "r2", "r3"}) {
		t.Errorf("runs delivered %v", runs)
	}
}

// 50 events in well under a second: the first 5 go one by one, the other
// 45 in one digest that counts them and lists every held run — in the
// webhook's JSON and in Slack's text.
func TestStormDigest(t *testing.T) {
	t.Parallel()
	wh := newReceiver(t, testKey, nil)
	sl := newReceiver(t, nil, nil)
	c := &notify.Config{
		Sinks: []notify.SinkConfig{
			webhookSink(t, "oncall", wh),
			{Name: "chat", Type: notify.TypeSlack, URLFile: writeFile(t, "slack-url", sl.srv.URL+"/services/T0/B0/secret")},
		},
		Digest: notify.DigestConfig{After: 5, Window: 2 * time.Second},
	}
	ob := start(t, t.TempDir(), c, fast())
	kinds := []notify.Kind{notify.KindFinished, notify.KindHeld, notify.KindFailed, notify.KindRefused, notify.KindFinished}
	want := map[notify.Kind]int{}
	var heldRuns []string
	for i := range 50 {
		k := kinds[i%len(kinds)]
		run := "run-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		if i >= 5 {
			want[k]++
		}
		if k == notify.KindHeld {
			heldRuns = append(heldRuns, run)
		}
		if err := ob.Enqueue(t.Context(), event(k, run)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "50 events in webhook messages", func() bool { return wh.events() == 50 })
	eventually(t, 10*time.Second, "6 Slack messages", func() bool { return sl.events() == 6 })
	msgs, _, _, bad := wh.snapshot()
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	if len(msgs) != 6 {
		t.Fatalf("%d webhook messages, want 5 single + 1 digest", len(msgs))
	}
	ids := map[string]bool{}
	for i, m := range msgs {
		for _, e := range m.Events {
			ids[e.ID] = true
		}
		if i < 5 && (m.Digest != nil || len(m.Events) != 1) {
			t.Errorf("message %d: want a single event", i)
		}
	}
	d := msgs[5]
	if d.Digest == nil || len(d.Events) != 45 {
		t.Fatalf("last message: want a digest of 45 events, got %d events, digest %+v", len(d.Events), d.Digest)
	}
	if diff := cmp.Diff(want, d.Digest.Counts); diff != "" {
		t.Errorf("digest counts (-want +got):\n%s", diff)
	}
	if len(ids) != 50 {
		t.Errorf("%d distinct event ids, want 50", len(ids))
	}
	sl.mu.Lock()
	digest := sl.texts[5]
	sl.mu.Unlock()
	if !strings.Contains(digest, "*kir: 45 runs within 2s*") {
		t.Errorf("Slack digest heading:\n%s", digest)
	}
	for _, run := range heldRuns[1:] { // the first held run went alone
		if !strings.Contains(digest, "`kir runs approve "+run+"`") {
			t.Errorf("Slack digest lacks held run %s:\n%s", run, digest)
		}
	}
}
