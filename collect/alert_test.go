package collect_test

import (
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/contain"
	"kir.dev/kir/evidence"
	"kir.dev/kir/falco"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/rotate"
)

// TestSealAlert runs the built-in collect-pod playbook as kir serve does
// for an alert (Request.Alert is the decoded alert's Vars): the sealed,
// signed bundle holds the alert as the journal recorded it, with a custody
// entry, verify covers it, and the report shows it, escaped. The same run
// started by a person writes no alert.json.
func TestSealAlert(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alert")
	pod := w.simplePod(t, "alerted", reg+"/test/app:1", "")
	engine, pb := collectEngine(t)
	keys := t.TempDir()
	if err := evidence.Keygen(keys, evidence.AlgEd25519); err != nil {
		t.Fatal(err)
	}
	alert := hostileAlert(t)
	vars := alert.Vars()
	run := func(alert map[string]any) string {
		t.Helper()
		bundle := filepath.Join(t.TempDir(), "bundle")
		r, err := engine.Start(t.Context(), playbooks.Request{
			Playbook: pb, Alert: alert,
			Params: map[string]any{"namespace": w.ns, "name": pod.Name, "bundle": bundle, "images": false,
				"key": filepath.Join(keys, evidence.PrivateKeyFile)},
			Env: action.Env{Kube: client, Cluster: cluster.Config.Host, Incident: "inc-alert"},
		})
		if err != nil || r.Status != playbooks.RunSucceeded {
			t.Fatalf("run: %v, %v", r, err)
		}
		return bundle
	}

	dir := run(vars)
	var got map[string]any
	if err := json.Unmarshal(readBundleFile(t, dir, collect.AlertFile), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	b, _ := json.Marshal(vars)
	_ = json.Unmarshal(b, &want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-the alert's Vars +file):\n%s", collect.AlertFile, diff)
	}
	sum, err := evidence.Show(dir)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(sum.Files, func(f evidence.File) bool { return f.Path == collect.AlertFile }); i < 0 || sum.Files[i].Source.Kind != "alert" {
		t.Errorf("manifest.json does not list %s as an alert: %+v", collect.AlertFile, sum.Files)
	}
	if i := slices.IndexFunc(sum.Custody, func(c evidence.CustodyRecord) bool { return c.Action == "alert" }); i < 0 ||
		!strings.Contains(detailJSON(t, sum.Custody[i].Detail), alert.Rule) {
		t.Errorf("custody has no alert entry naming the rule %q", alert.Rule)
	}
	reportShowsAlert(t, dir, alert)
	pub, err := evidence.LoadPublicKey(filepath.Join(keys, evidence.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	verifyAlertCovered(t, dir, pub)

	if dir := run(nil); fileExists(t, filepath.Join(dir, collect.AlertFile)) {
		t.Errorf("a run without an alert wrote %s", collect.AlertFile)
	}
}

// reportShowsAlert: report.html shows the alert's rule, priority, time,
// output and output fields, escaped.
func reportShowsAlert(t *testing.T, dir string, alert *falco.Alert) {
	t.Helper()
	report := string(readBundleFile(t, dir, evidence.ReportFile))
	for _, s := range []string{alert.Rule, alert.Priority.String(), alert.Time.Format(time.RFC3339Nano), alert.Output, "proc.cmdline", alert.Fields["proc.cmdline"]} {
		if !strings.Contains(report, html.EscapeString(s)) {
			t.Errorf("report.html lacks %q, escaped", s)
		}
	}
	if strings.Contains(report, "<script>") {
		t.Error("report.html holds the alert's markup unescaped")
	}
}

// verifyAlertCovered: the bundle verifies, and no longer does once the
// alert's file changes.
func verifyAlertCovered(t *testing.T, dir string, pub any) {
	t.Helper()
	rep, err := evidence.Verify(dir, pub)
	if err != nil || rep.Outcome() != evidence.Verified {
		t.Fatalf("verify: %v, %+v", err, rep)
	}
	file := filepath.Join(dir, filepath.FromSlash(collect.AlertFile))
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(readBundleFile(t, dir, collect.AlertFile)), "Critical", "Notice", 1)
	if err := os.WriteFile(file, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = evidence.Verify(dir, pub)
	if err != nil || rep.Outcome() != evidence.Failed ||
		!slices.ContainsFunc(rep.Problems, func(p evidence.Problem) bool { return p.Path == collect.AlertFile }) {
		t.Errorf("verify after changing %s: %v, %+v; want it named", collect.AlertFile, err, rep)
	}
}

// collectEngine is kir's engine with its actions and the built-in
// collect-pod playbook.
func collectEngine(t *testing.T) (*playbooks.Engine, *playbooks.Playbook) {
	t.Helper()
	reg, err := action.NewRegistry(slices.Concat(contain.Actions(), collect.Actions(), rotate.Actions(rotate.Stores{}))...)
	if err != nil {
		t.Fatal(err)
	}
	lib, err := playbooks.NewLibrary(reg, playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := lib.Get("collect-pod")
	if !ok {
		t.Fatal("no built-in collect-pod")
	}
	runs, err := playbooks.OpenRuns(filepath.Join(t.TempDir(), "runs"))
	if err != nil {
		t.Fatal(err)
	}
	return &playbooks.Engine{Actions: reg, Runs: runs, Version: "test"}, e.Playbook
}

// hostileAlert is a real Falcosidekick payload whose output and a field
// carry markup, as an attacker's command line can.
func hostileAlert(t *testing.T) *falco.Alert {
	t.Helper()
	raw, err := os.ReadFile("../testdata/falco/sidekick-drop-execute.json")
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.ReplaceAll(string(raw), "kinsing -c /tmp/.x", `kinsing -c '</pre><script>alert(1)</script>' & x`))
	a, err := falco.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func readBundleFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileExists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

func detailJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
