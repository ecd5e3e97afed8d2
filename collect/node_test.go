package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/agent"
	"kir.dev/kir/evidence"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The manifest comes from a node: its names become paths in the bundle
// and requests to the agent, so kir takes only what the agent could have
// written, once each, with a digest and a size.
func TestCheckManifest(t *testing.T) {
	t.Parallel()
	sum := hexSum(nil)
	ok := agent.CaptureFile{Name: "processes.json", SHA256: sum, Size: 1}
	many := make([]agent.CaptureFile, maxCaptureFiles+1)
	for _, tc := range []struct {
		name  string
		files []agent.CaptureFile
		want  string // "" for valid
	}{
		{"valid", []agent.CaptureFile{ok, {Name: "exe/" + sum, SHA256: sum}, {Name: "layer/main.tar", SHA256: sum}}, ""},
		{"traversal", []agent.CaptureFile{{Name: "../../../run/journal.jsonl", SHA256: sum}}, "is not a capture file's name"},
		{"layer traversal", []agent.CaptureFile{{Name: "layer/../../x.tar", SHA256: sum}}, "is not a capture file's name"},
		{"the manifest itself", []agent.CaptureFile{{Name: agent.ManifestName, SHA256: sum}}, "is not a capture file's name"},
		{"odd bytes", []agent.CaptureFile{{Name: "layer/ma\x00in.tar", SHA256: sum}}, "is not a capture file's name"},
		{"twice", []agent.CaptureFile{ok, ok}, "listed twice"},
		{"no digest", []agent.CaptureFile{{Name: "sockets.json"}}, "not a hex SHA-256"},
		{"upper-case digest", []agent.CaptureFile{{Name: "sockets.json", SHA256: strings.ToUpper(sum)}}, "not a hex SHA-256"},
		{"negative size", []agent.CaptureFile{{Name: "sockets.json", SHA256: sum, Size: -1}}, "negative size"},
		{"too many", many, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := checkManifest(agent.Manifest{Files: tc.files})
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("checkManifest: %v, want %q", err, tc.want)
			}
		})
	}
}

// newFetch is a fetch into a new bundle from an agent whose files are
// files.
func newFetch(t *testing.T, bundle *evidence.Bundle, files map[string][]byte) (*fetch, *int) {
	t.Helper()
	requests := 0
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-1"}, Spec: corev1.PodSpec{NodeName: "n1"}}
	f := &fetch{env: action.Env{}.Defaults(), sink: resumed{bundle}, j: &action.WriteLog{}, dir: "pods/ns/web/node", pod0: pod,
		endpoint: agent.Endpoint{Namespace: "kir-node", Pod: "agent-1", Port: 9464},
		open: func(_ context.Context, _, name string) (io.ReadCloser, error) {
			requests++
			b, ok := files[name]
			if !ok {
				return nil, fmt.Errorf("%s: not served", name)
			}
			return io.NopCloser(strings.NewReader(string(b))), nil
		}}
	return f, &requests
}

func newBundle(t *testing.T) *evidence.Bundle {
	t.Helper()
	b, err := evidence.Create(filepath.Join(t.TempDir(), "bundle"), evidence.Options{Incident: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// An agent that sends more than the manifest lists has kir write no more
// than one byte past it, and the transfer fails.
func TestFetchBoundsAFileToItsListedSize(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	big := []byte(strings.Repeat("x", 1<<20))
	f, _ := newFetch(t, b, map[string][]byte{"processes.json": big})
	_, err := f.file(t.Context(), "id-1", agent.CaptureFile{Name: "processes.json", SHA256: hexSum(big[:10]), Size: 10})
	if err == nil {
		t.Fatal("a file longer than listed was taken")
	}
	got, ok := b.Has("pods/ns/web/node/processes.json")
	if !ok || got.Size != 11 {
		t.Fatalf("in the bundle: %+v (%v); want the 11 bytes read", got, ok)
	}
}

// A resumed run takes the manifest already in the bundle if it is the
// agent's current capture's, fetches nothing twice, and refuses to mix a
// new capture into a bundle holding an older one.
func TestFetchResumes(t *testing.T) {
	t.Parallel()
	procs := []byte(`{"processes":[]}`)
	m := agent.Manifest{UID: "uid-1", ID: "id-1", Files: []agent.CaptureFile{{Name: "processes.json", SHA256: hexSum(procs), Size: int64(len(procs))}}}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	rec := &agent.CaptureRecord{ID: "id-1", State: agent.CaptureReady, Manifest: hexSum(raw)}
	b := newBundle(t)
	f, requests := newFetch(t, b, map[string][]byte{agent.ManifestName: raw, "processes.json": procs})
	if _, err := f.manifest(t.Context(), f.pod0, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.file(t.Context(), "id-1", m.Files[0]); err != nil {
		t.Fatal(err)
	}

	again, requests2 := newFetch(t, b, nil)
	got, err := again.manifest(t.Context(), again.pod0, rec)
	if err != nil {
		t.Fatalf("resuming: %v", err)
	}
	if got.ID != "id-1" || len(got.Files) != 1 {
		t.Fatalf("resumed manifest %+v", got)
	}
	if _, err := again.file(t.Context(), "id-1", m.Files[0]); err != nil {
		t.Fatalf("resuming a fetched file: %v", err)
	}
	if *requests != 2 || *requests2 != 0 {
		t.Fatalf("requests: first run %d, resumed run %d; want 2 and 0", *requests, *requests2)
	}

	newer := &agent.CaptureRecord{ID: "id-2", State: agent.CaptureReady, Manifest: hexSum([]byte("another"))}
	if _, err := again.manifest(t.Context(), again.pod0, newer); err == nil || !strings.Contains(err.Error(), "fetch it into a new bundle") {
		t.Fatalf("a new capture into a bundle holding an older one: %v", err)
	}
	changed := agent.CaptureFile{Name: "processes.json", SHA256: hexSum([]byte("other")), Size: 5}
	if _, err := again.file(t.Context(), "id-2", changed); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("a file of another capture already in the bundle: %v", err)
	}
}

// What the container wrote may hold credentials it copied (a service
// account token into /tmp): the layer's tar is marked sensitive, like the
// command lines.
func TestFetchMarksSensitiveFiles(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	files := map[string][]byte{"layer/main.tar": []byte("tar"), "layer/main.json": []byte("{}"), "processes.json": []byte("[]"), "sockets.json": []byte("{}")}
	f, _ := newFetch(t, b, files)
	for name, want := range map[string]bool{"layer/main.tar": true, "layer/main.json": false, "processes.json": true, "sockets.json": false} {
		if _, err := f.file(t.Context(), "id-1", agent.CaptureFile{Name: name, SHA256: hexSum(files[name]), Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		got, _ := b.Has("pods/ns/web/node/" + name)
		if got.Source.Sensitive != want {
			t.Errorf("%s: sensitive %v, want %v", name, got.Source.Sensitive, want)
		}
	}
}

// An agent that stops sending mid-file does not hold the run: the
// transfer fails once no byte came for the idle bound.
func TestFetchGivesUpOnAStalledTransfer(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	f, _ := newFetch(t, b, nil)
	f.idle = 200 * time.Millisecond
	f.open = func(ctx context.Context, _, _ string) (io.ReadCloser, error) {
		r, w := io.Pipe()
		go func() {
			_, _ = w.Write([]byte("{")) // one byte, then silence
			<-ctx.Done()
			w.CloseWithError(ctx.Err())
		}()
		return r, nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.file(t.Context(), "id-1", agent.CaptureFile{Name: "processes.json", SHA256: hexSum([]byte("{}")), Size: 2})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a stalled transfer succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled transfer held the fetch for 10 s with a 200 ms idle bound")
	}
}
