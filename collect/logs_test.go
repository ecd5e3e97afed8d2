package collect_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/collect"
)

// logCut is the part of logs/<container>.log.cut.json the tests read.
type logCut struct {
	File         string `json:"file"`
	Container    string `json:"container"`
	Bytes        int64  `json:"bytes"`
	SHA256       string `json:"sha256"`
	Complete     bool   `json:"complete"`
	LimitBytes   int64  `json:"limitBytes"`
	HeadBytes    int64  `json:"headBytes"`
	TailBytes    int64  `json:"tailBytes"`
	SkippedBytes int64  `json:"skippedBytes"`
	Marker       string `json:"marker"`
}

// TestLogHeadAndTail: a container that wrote ~30 MiB keeps, with the
// default limit, its first and last 5 MiB around a marked gap, with the
// whole stream's length and hash; its neighbour's small log is stored as
// it came.
func TestLogHeadAndTail(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "headtail")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "noisy", Labels: map[string]string{"pod": "noisy"}},
		Spec: corev1.PodSpec{NodeName: w.node, Containers: []corev1.Container{
			{Name: chattyContainer, Image: reg + "/test/app:1"},
			{Name: "app", Image: reg + "/test/app:1"},
		}},
	}
	if _, err := cluster.Client.CoreV1().Pods(w.ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitPod(t, "pod=noisy", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	sink := newDirSink(t.TempDir())
	res, err := collect.Pod(t.Context(), client, w.ns, "noisy", collect.Options{Sink: sink})
	if err != nil {
		t.Fatalf("collect.Pod: %v\nnotes:\n%s", err, strings.Join(res.Notes, "\n"))
	}
	stream := chattyLog(true)
	const limit = collect.DefaultLogLimitBytes
	if len(stream) < 3*limit {
		t.Fatalf("the test's log is %d bytes: not much longer than the limit", len(stream))
	}
	want := wantHeadTail(t, chattyContainer, stream, limit)
	got := mustRead(t, sink, "logs/chatty.log")
	if !bytes.Equal(got, want.file) {
		t.Errorf("logs/chatty.log: %d bytes starting %.60q, ending %.60q; want %d bytes: the first %d and the last %d of the %d-byte log around %q",
			len(got), got, got[max(0, len(got)-60):], len(want.file), want.cut.HeadBytes, want.cut.TailBytes, len(stream), want.cut.Marker)
	}
	if !bytes.HasSuffix(got, []byte(" "+chattyLatest+"\n")) {
		t.Errorf("logs/chatty.log does not end with the latest line %q", chattyLatest)
	}
	f, _ := sink.file("logs/chatty.log")
	if !f.Source.Truncated || !strings.Contains(f.Source.Note, want.cut.SHA256) || f.Size > limit+200 {
		t.Errorf("logs/chatty.log: %d bytes, source %+v; want at most the limit and a marker, truncated, the whole log's hash in the note", f.Size, f.Source)
	}
	var cut logCut
	readJSON(t, sink, "logs/chatty.log.cut.json", &cut)
	if diff := cmp.Diff(want.cut, cut); diff != "" {
		t.Errorf("logs/chatty.log.cut.json (-want +got):\n%s", diff)
	}
	wantNote(t, res, want.cut.SHA256)

	// A log within the limit is stored as it came, with its hash noted.
	if got := string(mustRead(t, sink, "logs/app.log")); got != appStream() {
		t.Errorf("logs/app.log = %.80q…, want kwok's log unchanged", got)
	}
	a, _ := sink.file("logs/app.log")
	if a.Source.Truncated || !strings.Contains(a.Source.Note, a.SHA256) {
		t.Errorf("logs/app.log: source %+v; want whole, its hash %s noted", a.Source, a.SHA256)
	}
	if _, ok := sink.file("logs/app.log.cut.json"); ok {
		t.Error("logs/app.log.cut.json written for a log within the limit")
	}
}

// headTailWant is what the bundle must hold of a log cut at a limit.
type headTailWant struct {
	file []byte
	cut  logCut
}

// wantHeadTail computes, independently of collect, the stored file and
// the cut.json of stream kept within limit.
func wantHeadTail(t *testing.T, container, stream string, limit int) headTailWant {
	t.Helper()
	sum := sha256.Sum256([]byte(stream))
	hexSum := hex.EncodeToString(sum[:])
	head, tail := limit-limit/2, limit/2
	skipped := len(stream) - head - tail
	marker := fmt.Sprintf("--- kir: %d bytes left out here (bytes %d to %d of a %d-byte log, sha256 %s) ---", skipped, head, len(stream)-tail, len(stream), hexSum)
	nl := ""
	if stream[head-1] != '\n' {
		nl = "\n"
	}
	return headTailWant{
		file: []byte(stream[:head] + nl + marker + "\n" + stream[len(stream)-tail:]),
		cut: logCut{
			File: "logs/" + container + ".log", Container: container,
			Bytes: int64(len(stream)), SHA256: hexSum, Complete: true, LimitBytes: int64(limit),
			HeadBytes: int64(head), TailBytes: int64(tail), SkippedBytes: int64(skipped), Marker: marker,
		},
	}
}

// appStream is the app container's log as the kubelet API sends it.
func appStream() string {
	return strings.ReplaceAll(appLog(), logTime+" stdout F ", logTime+" ")
}
