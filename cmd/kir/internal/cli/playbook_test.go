package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
)

// cliMu serialises in-process runs: urfave/cli v2 writes to its
// package-level help flag while parsing.
var cliMu sync.Mutex

func kir(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cliMu.Lock()
	defer cliMu.Unlock()
	code := cli.Run(context.Background(), append([]string{"kir"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPlaybookValidate(t *testing.T) {
	code, out, errOut := kir(t, "playbook", "validate", "../../testdata/playbooks/valid-full.yaml", "../../testdata/playbooks/invalid-references.yaml")
	if code != cli.ExitUsage {
		t.Errorf("exit %d, want %d", code, cli.ExitUsage)
	}
	if !strings.Contains(out, "valid-full.yaml: ok: playbook isolate-and-drain, 3 steps") {
		t.Errorf("stdout %q does not report the valid file", out)
	}
	for _, want := range []string{
		`invalid-references.yaml:14:7: step "isolate": no parameter named "namespce"`,
		`invalid-references.yaml:19:7: step "cordon": no step named "drain"`,
		"kir: 5 problem(s) found",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, _ := kir(t, "playbook", "validate", "../../testdata/playbooks/valid-minimal.yaml"); code != cli.ExitOK {
		t.Errorf("valid file: exit %d", code)
	}
	if code, _, errOut := kir(t, "playbook", "validate", "no-such-file.yaml"); code != cli.ExitUsage || !strings.Contains(errOut, "no-such-file.yaml") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

// TestPlaybookOverride: a user playbook with a built-in one's name wins, and
// list and show say where each comes from; a broken user playbook stops
// every command that loads playbooks, naming the file and line.
func TestPlaybookOverride(t *testing.T) {
	dir := t.TempDir()
	mine := strings.Replace(mustRead(t, "../../playbooks/builtin/contain-node.yaml"), "description: >-", "description: >-\n  Site override.", 1)
	if err := os.WriteFile(filepath.Join(dir, "contain-node.yaml"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := kir(t, "playbook", "list", "--playbooks-dir", dir)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	// Columns are as wide as the longest name: compare words.
	words := strings.Join(strings.Fields(out), " ")
	if !strings.Contains(words, "contain-node "+filepath.Join(dir, "contain-node.yaml")+" (overrides builtin:contain-node.yaml)") {
		t.Errorf("list does not show the override:\n%s", out)
	}
	if !strings.Contains(words, "contain-pod builtin:contain-pod.yaml") {
		t.Errorf("list does not show the built-in contain-pod:\n%s", out)
	}
	_, out, _ = kir(t, "playbook", "show", "contain-node", "--playbooks-dir", dir)
	if !strings.Contains(out, "# overrides: builtin:contain-node.yaml") || !strings.Contains(out, "Site override.") {
		t.Errorf("show does not print the override:\n%s", out)
	}

	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("apiVersion: kir.dev/v1alpha1\nkind: Playbook\nmetadata:\n  name: broken\nsteps:\n  - name: x\n    action: contain.nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = kir(t, "playbook", "list", "--playbooks-dir", dir)
	if code != cli.ExitUsage || !strings.Contains(errOut, "broken.yaml:6:5: step \"x\": unknown action \"contain.nope\"") {
		t.Errorf("broken user playbook: exit %d, %q", code, errOut)
	}
}

func TestActionsJSON(t *testing.T) {
	code, out, _ := kir(t, "actions", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var specs []action.Spec
	if err := json.Unmarshal([]byte(out), &specs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range specs {
		if s.Name == "contain.isolate-pod" {
			found = len(s.Params) > 0 && len(s.Rules) > 0
		}
	}
	if !found {
		t.Errorf("contain.isolate-pod missing or without parameters and rules: %s", out)
	}
}

func TestRunsEmptyAndMissing(t *testing.T) {
	state := t.TempDir()
	code, out, _ := kir(t, "runs", "list", "--state-dir", state)
	if code != 0 || strings.TrimSpace(out) != "RUN  PLAYBOOK  STATUS  STARTED  INCIDENT" {
		t.Errorf("empty list: exit %d, %q", code, out)
	}
	if code, _, errOut := kir(t, "runs", "show", "run-20990101-000000-000000", "--state-dir", state); code != cli.ExitNotFound || !strings.Contains(errOut, "no such run") {
		t.Errorf("unknown run: exit %d, %q", code, errOut)
	}
	if code, _, _ := kir(t, "runs", "show", "../etc/passwd", "--state-dir", state); code != cli.ExitUsage {
		t.Errorf("bad run id: exit %d, want %d", code, cli.ExitUsage)
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
