package notify_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"kir.dev/kir/notify"
)

// syncBuffer is a log sink that the outbox's goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A Slack webhook's URL is its credential: it appears in no log line
// and no error, whether the receiver refuses, is gone, or hangs.
func TestSlackURLNeverLogged(t *testing.T) {
	t.Parallel()
	const secret = "T0KIR/B0KIR/xoxSecretPathNeverLogged"
	refuses := newReceiver(t, nil, func(string, int) int { return http.StatusNotFound })
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	release := make(chan struct{})
	hangs := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(hangs.Close)
	t.Cleanup(func() { close(release) })
	slack := func(name, base string) notify.SinkConfig {
		return notify.SinkConfig{Name: name, Type: notify.TypeSlack, Timeout: 200 * time.Millisecond,
			URLFile: writeFile(t, name, base+"/services/"+secret+"?token=xoxQuerySecret")}
	}
	c := &notify.Config{Sinks: []notify.SinkConfig{slack("refuses", refuses.srv.URL), slack("gone", gone.URL), slack("hangs", hangs.URL)}}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ob := start(t, t.TempDir(), c, fast(), notify.WithLogger(log))
	if err := ob.Enqueue(t.Context(), event(notify.KindHeld, "r1")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { t.Logf("log:\n%s", logs.String()) })
	eventually(t, 10*time.Second, "every sink's failure logged", func() bool {
		l := logs.String()
		return strings.Contains(l, "HTTP 404") && strings.Contains(l, "connection refused") && strings.Contains(l, "sink hangs: no answer within 200ms")
	})
	for _, s := range []string{secret, "xoxSecretPathNeverLogged", "xoxQuerySecret"} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("the log holds the URL's secret %q:\n%s", s, logs.String())
		}
	}
	t.Logf("log:\n%s", logs.String())

	// Nor do the errors of Open when the URL is unusable.
	for _, bad := range []string{"ftp://hooks.example/services/" + secret, "https://hooks.example/services/" + secret + "\x7f", "hooks.example/" + secret} {
		c := &notify.Config{Sinks: []notify.SinkConfig{{Name: "chat", Type: notify.TypeSlack, URLFile: writeFile(t, "bad-url", bad)}}}
		_, err := notify.Open(t.TempDir(), c)
		if err == nil || strings.Contains(err.Error(), "xoxSecret") || !strings.Contains(err.Error(), "urlFile") {
			t.Errorf("Open with a bad URL: %v; want an error naming urlFile, without the URL", err)
		}
	}
}
