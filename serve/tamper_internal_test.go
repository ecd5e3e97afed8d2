package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kir.dev/kir/evidence"
	"kir.dev/kir/tamper"
)

// A tamper finding goes only to the bundles of its incident that hold
// evidence of its pod: the incident on a policy is what its writer said,
// and a forged one must not put findings into another incident's
// evidence.
func TestIncidentBundlesHoldThePod(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, incident string, paths ...string) {
		var m evidence.Manifest
		m.Incident = incident
		for _, p := range paths {
			m.Files = append(m.Files, evidence.File{Path: p})
		}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, evidence.ManifestFile), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ours", "INC-1", "pods/web/api-0/pod.yaml", "report.html")
	write("neighbour", "INC-1", "pods/web/api-1/pod.yaml")
	write("prefix", "INC-1", "pods/web/api-00/pod.yaml")
	write("other-incident", "INC-2", "pods/web/api-0/pod.yaml")
	got := incidentBundles(dir, "INC-1", "pods/web/api-0")
	if want := []string{filepath.Join(dir, "ours")}; !slices.Equal(got, want) {
		t.Errorf("bundles = %v, want %v", got, want)
	}
}

// A pod's findings of one kind go into its evidence once per tamperEvery,
// the next saying how many were left out; other pods and kinds are not
// held back.
func TestTamperLimiter(t *testing.T) {
	t.Parallel()
	var l tamperLimiter
	at := time.Unix(1000, 0)
	lifted := tamper.Finding{UID: "u1", Kind: tamper.LabelRemoved}
	if n, ok := l.allow(lifted, at); !ok || n != 0 {
		t.Fatalf("first finding: %d, %v", n, ok)
	}
	for i := range 5 {
		if _, ok := l.allow(lifted, at.Add(time.Duration(i+1)*time.Second)); ok {
			t.Fatalf("finding %d within %s let through", i+2, tamperEvery)
		}
	}
	if _, ok := l.allow(tamper.Finding{UID: "u2", Kind: tamper.LabelRemoved}, at.Add(time.Second)); !ok {
		t.Error("another pod's finding held back")
	}
	if n, ok := l.allow(lifted, at.Add(tamperEvery+time.Second)); !ok || n != 5 {
		t.Errorf("after %s: %d suppressed, %v; want 5, let through", tamperEvery, n, ok)
	}
}
