package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
)

func TestPlaybookValidate(t *testing.T) {
	t.Parallel()
	r := kir.Run(t, "playbook", "validate", "../../../../testdata/playbooks/valid-full.yaml", "../../../../testdata/playbooks/invalid-references.yaml")
	if r.Code != cli.ExitUsage {
		t.Errorf("exit %d, want %d", r.Code, cli.ExitUsage)
	}
	if !strings.Contains(r.Stdout, "valid-full.yaml: ok: playbook isolate-and-drain, 3 steps") {
		t.Errorf("stdout %q does not report the valid file", r.Stdout)
	}
	for _, want := range []string{
		`invalid-references.yaml:14:7: step "isolate": no parameter named "namespce"`,
		`invalid-references.yaml:19:7: step "cordon": no step named "drain"`,
		"kir: 5 problem(s) found",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if r := kir.Run(t, "playbook", "validate", "../../../../testdata/playbooks/valid-minimal.yaml"); r.Code != cli.ExitOK {
		t.Errorf("valid file: exit %d", r.Code)
	}
	if r := kir.Run(t, "playbook", "validate", "no-such-file.yaml"); r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "no-such-file.yaml") {
		t.Errorf("missing file: exit %d, %q", r.Code, r.Stderr)
	}
}

// TestPlaybookOverride: a user playbook with a built-in one's name wins, and
// list and show say where each comes from; a broken user playbook stops
// every command that loads playbooks, naming the file and line.
func TestPlaybookOverride(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mine := strings.Replace(mustRead(t, "../../../../playbooks/builtin/contain-node.yaml"), "description: >-", "description: >-\n  Site override.", 1)
	if err := os.WriteFile(filepath.Join(dir, "contain-node.yaml"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	r := kir.Run(t, "playbook", "list", "--playbooks-dir", dir)
	if r.Code != 0 {
		t.Fatalf("list: exit %d: %s", r.Code, r.Stderr)
	}
	// Columns are as wide as the longest name: compare words.
	words := strings.Join(strings.Fields(r.Stdout), " ")
	if !strings.Contains(words, "contain-node "+filepath.Join(dir, "contain-node.yaml")+" (overrides builtin:contain-node.yaml)") {
		t.Errorf("list does not show the override:\n%s", r.Stdout)
	}
	if !strings.Contains(words, "contain-pod builtin:contain-pod.yaml") {
		t.Errorf("list does not show the built-in contain-pod:\n%s", r.Stdout)
	}
	r = kir.Run(t, "playbook", "show", "contain-node", "--playbooks-dir", dir)
	if !strings.Contains(r.Stdout, "# overrides: builtin:contain-node.yaml") || !strings.Contains(r.Stdout, "Site override.") {
		t.Errorf("show does not print the override:\n%s", r.Stdout)
	}

	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("apiVersion: kir.dev/v1alpha1\nkind: Playbook\nmetadata:\n  name: broken\nsteps:\n  - name: x\n    action: contain.nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = kir.Run(t, "playbook", "list", "--playbooks-dir", dir)
	if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "broken.yaml:7:13: step \"x\": unknown action \"contain.nope\"") {
		t.Errorf("broken user playbook: exit %d, %q", r.Code, r.Stderr)
	}
}

func TestActionsJSON(t *testing.T) {
	t.Parallel()
	r := kir.Run(t, "actions", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	var specs []action.Spec
	if err := json.Unmarshal([]byte(r.Stdout), &specs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range specs {
		if s.Name == "contain.isolate-pod" {
			found = len(s.Params) > 0 && len(s.Rules) > 0
		}
	}
	if !found {
		t.Errorf("contain.isolate-pod missing or without parameters and rules: %s", r.Stdout)
	}
}

func TestRunsEmptyAndMissing(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	r := kir.Run(t, "runs", "list", "--state-dir", state)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "RUN  PLAYBOOK  STATUS  STARTED  INCIDENT" {
		t.Errorf("empty list: exit %d, %q", r.Code, r.Stdout)
	}
	if r := kir.Run(t, "runs", "show", "run-20990101-000000-000000", "--state-dir", state); r.Code != cli.ExitNotFound || !strings.Contains(r.Stderr, "no such run") {
		t.Errorf("unknown run: exit %d, %q", r.Code, r.Stderr)
	}
	if r := kir.Run(t, "runs", "show", "../etc/passwd", "--state-dir", state); r.Code != cli.ExitUsage {
		t.Errorf("bad run id: exit %d, want %d", r.Code, cli.ExitUsage)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
