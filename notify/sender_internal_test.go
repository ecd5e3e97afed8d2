package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	lo, hi := time.Second, 5*time.Minute
	prev := time.Duration(0)
	for n := 1; n <= 40; n++ {
		for range 50 {
			d := backoff(n, lo, hi)
			if d < lo || d > hi {
				t.Fatalf("attempt %d: %s outside [%s, %s]", n, d, lo, hi)
			}
		}
		d := backoff(n, lo, hi)
		if n <= 8 && d < prev*3/2 {
			t.Errorf("attempt %d: %s after %s: not growing", n, d, prev)
		}
		prev = d
	}
	if d := backoff(1, lo, hi); d > lo*5/4 {
		t.Errorf("first retry after %s, want about %s", d, lo)
	}
}

// A message its receiver never acknowledges is given up after
// GiveUpAfter: logged with its runs, counted, and not taken up again.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	os.WriteFile(urlFile, []byte(srv.URL+"/services/SECRETPATH"), 0o600)
	c := &Config{Sinks: []SinkConfig{{Name: "chat", Type: TypeSlack, URLFile: urlFile}}}
	var logs bytes.Buffer
	var mu sync.Mutex
	var givenUp atomic.Int64
	ob, err := Open(filepath.Join(dir, "outbox"), c,
		WithBackoff(5*time.Millisecond, 10*time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))),
		WithMetrics(Metrics{GivenUp: func(_ string, n int) { givenUp.Add(int64(n)) }}))
	if err != nil {
		t.Fatal(err)
	}
	ob.senders[0].settings.giveUpAfter = 100 * time.Millisecond // Validate allows 1m at least
	if err := ob.Enqueue(t.Context(), Event{Kind: KindHeld, Run: "r1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { ob.Run(ctx); close(ran) }()
	deadline := time.Now().Add(10 * time.Second)
	for givenUp.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-ran
	if givenUp.Load() != 1 || ob.Pending() != 0 {
		t.Errorf("given up %d, pending %d; want 1 and 0", givenUp.Load(), ob.Pending())
	}
	ob.Close()
	mu.Lock()
	l := logs.String()
	mu.Unlock()
	if !regexp.MustCompile(`level=ERROR msg="notification given up" sink=chat .*runs=\[r1\] held=1 error="sink chat: HTTP 502"`).MatchString(l) {
		t.Errorf("no give-up line:\n%s", l)
	}
	if strings.Contains(l, "SECRETPATH") {
		t.Errorf("log holds the URL:\n%s", l)
	}
	ob, err = Open(filepath.Join(dir, "outbox"), c)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if ob.Pending() != 0 {
		t.Errorf("a given-up message is pending after a restart")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// What comes from the alert cannot make a mention, a link, or leave its
// code span in Slack's text, and cannot make the event unbounded.
func TestSlackEscapesAlertText(t *testing.T) {
	t.Parallel()
	e := Event{Kind: KindFailed, Run: "r1", Reason: "<!channel> <https://evil.example|click>",
		Pods:  []Pod{{Namespace: "ns", Name: "a`<!here>`"}},
		Alert: &Alert{Rule: strings.Repeat("x", 5000)}, Nodes: make([]string, 80)}
	e.bound()
	body, err := renderSlack(newMessage("chat", []Event{e}, false, time.Second), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ Text string }
	json.Unmarshal(body, &s)
	for _, bad := range []string{"<!channel>", "<!here>", "<https://", "a`<"} {
		if strings.Contains(s.Text, bad) {
			t.Errorf("text holds %q:\n%s", bad, s.Text)
		}
	}
	if len(e.Alert.Rule) > maxField+len("…") || len(e.Nodes) != MaxTargets || e.MoreNodes != 30 {
		t.Errorf("not bounded: rule %d bytes, %d nodes, %d more", len(e.Alert.Rule), len(e.Nodes), e.MoreNodes)
	}
}

// docs/notifications.md's example is a Message, field for field.
func TestDocExample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("no ```json block in docs/notifications.md")
	}
	d := json.NewDecoder(bytes.NewReader(m[1]))
	d.DisallowUnknownFields()
	var msg Message
	if err := d.Decode(&msg); err != nil {
		t.Fatalf("the example is not a Message: %v", err)
	}
	out, _ := json.Marshal(msg)
	var a, z any
	json.Unmarshal(m[1], &a)
	json.Unmarshal(out, &z)
	if diff := cmp.Diff(a, z); diff != "" {
		t.Errorf("example and Message differ (-doc +Message):\n%s", diff)
	}
	ev := msg.Events[0]
	ev.bound()
	if ev.Held.Approve != ApproveCommand(ev.Run) || ev.Held.Deny != DenyCommand(ev.Run) {
		t.Errorf("the example's commands are not the ones kir sends: %+v", ev.Held)
	}
}
