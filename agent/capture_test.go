package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kir.dev/kir/agent/container"
	"kir.dev/kir/agent/layer"
)

// A fixed clock (a test's, or an agent restarted within the clock's
// resolution) must not make two captures of a pod share a directory: the
// second one's files would collide with the first's.
func TestCaptureIDsNeverCollide(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	a, err := captureID(at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := captureID(at)
	if err != nil {
		t.Fatal(err)
	}
	if a == b || !validID.MatchString(a) || !validID.MatchString(b) {
		t.Fatalf("captureID at one instant: %q and %q, want two valid, different ids", a, b)
	}
	root := t.TempDir()
	if _, err := newCapture(root, "uid-1", a, Manifest{}, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := newCapture(root, "uid-1", a, Manifest{}, 1<<20); err == nil {
		t.Fatal("a second capture in an existing capture's directory was created")
	}
}

// What a pod makes the agent write stops at the capture's budget, and the
// file cut short is listed with what it holds.
func TestCaptureWriteStopsAtBudget(t *testing.T) {
	t.Parallel()
	c, err := newCapture(t.TempDir(), "uid-1", "id-1", Manifest{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	err = c.write("processes.json", func(w io.Writer) error {
		_, err := io.Copy(w, strings.NewReader(strings.Repeat("x", 1<<20)))
		return err
	})
	if !errors.Is(err, errBudget) {
		t.Fatalf("writing 1 MiB with a 10-byte budget: err %v, want errBudget", err)
	}
	raw, err := os.ReadFile(filepath.Join(c.dir, "processes.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	want := CaptureFile{Name: "processes.json", SHA256: hex.EncodeToString(sum[:]), Size: 10}
	if len(raw) != 10 || len(c.m.Files) != 1 || c.m.Files[0] != want {
		t.Fatalf("on disk %d bytes, listed %+v; want 10 bytes listed as %+v", len(raw), c.m.Files, want)
	}
	if err := c.write("sockets.json", func(w io.Writer) error { _, err := w.Write([]byte("{}")); return err }); !errors.Is(err, errBudget) {
		t.Fatalf("writing past a spent budget: err %v, want errBudget", err)
	}
}

// A container's layer gets no more than what is left of the capture's
// budget, whatever LayerMaxBytes says, and none once it is spent.
func TestCaptureLayersWithinBudget(t *testing.T) {
	t.Parallel()
	upper := t.TempDir()
	if err := os.WriteFile(filepath.Join(upper, "miner"), make([]byte, 5000), 0o755); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{HostRoot: "/", Now: time.Now, LayerMaxBytes: 1 << 30}}
	c, err := newCapture(t.TempDir(), "uid-1", "id-1", Manifest{}, layerIndexReserve+1000)
	if err != nil {
		t.Fatal(err)
	}
	pod := container.Pod{Containers: []container.Container{{Name: "main", Upper: upper}, {Name: "side", Upper: upper}}}
	a.captureLayers(context.Background(), &taking{c: c, pod: pod})
	if len(c.m.Errors) > 0 {
		t.Fatalf("errors: %q", c.m.Errors)
	}
	raw, err := os.ReadFile(filepath.Join(c.dir, "layer", "main.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lf LayerFile
	if err := json.Unmarshal(raw, &lf); err != nil {
		t.Fatal(err)
	}
	if len(lf.Skipped) != 1 || lf.Skipped[0].Reason != layer.ReasonBudget {
		t.Fatalf("a 5000-byte file with 1000 bytes of budget: skipped %+v, want it skipped for the budget", lf.Skipped)
	}
	if c.used > c.max {
		t.Fatalf("used %d bytes of a %d budget", c.used, c.max)
	}
	if !strings.Contains(strings.Join(c.m.Notes, "\n"), "container side: no writable layer taken: the capture's byte budget is spent") {
		t.Fatalf("notes %q: want the second container's layer refused", c.m.Notes)
	}
}

// A capture removed while it is taken (its pod released: removeCaptures)
// stays removed: later writes fail instead of making its directory again.
func TestCaptureRemovedWhileTakenStaysRemoved(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	c, err := newCapture(root, "uid-1", "id-1", Manifest{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := removeCaptures(root, "uid-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.writeJSON("layer/main.json", struct{}{}); err == nil {
		t.Fatal("a file was written into a removed capture")
	}
	if _, err := c.seal(); err == nil {
		t.Fatal("a removed capture was sealed")
	}
	if _, err := os.Stat(filepath.Join(root, "uid-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the removed capture's directory: %v, want it gone", err)
	}
}
