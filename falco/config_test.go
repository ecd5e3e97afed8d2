package falco_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/falco"
)

var update = flag.Bool("update", false, "rewrite the golden files of invalid routing configs")

// TestParseConfig parses every testdata/routing file: valid-*.yaml must
// parse; invalid-*.yaml must fail with exactly the problems in its .golden
// file, each naming file:line:col and what is wrong.
func TestParseConfig(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../testdata/routing/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no routing configs in testdata: %v", err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := falco.ParseConfig("testdata/routing/"+name, data)
			switch {
			case strings.HasPrefix(name, "valid-"):
				if err != nil {
					t.Fatalf("want it to parse, got:\n%v", err)
				}
				if c.Source != "testdata/routing/"+name {
					t.Errorf("Source = %q", c.Source)
				}
			case strings.HasPrefix(name, "invalid-"):
				var ce *falco.ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("want a *ConfigError, got %v", err)
				}
				got := err.Error() + "\n"
				golden := strings.TrimSuffix(path, ".yaml") + ".golden"
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./falco -run TestParseConfig -update)", err)
				}
				if diff := cmp.Diff(string(want), got); diff != "" {
					t.Errorf("problems differ from %s (-want +got):\n%s", golden, diff)
				}
				for _, p := range ce.Problems {
					if p.Pos.File != "testdata/routing/"+name {
						t.Errorf("problem %q does not name its file", p)
					}
				}
			default:
				t.Fatalf("%s: name testdata routing configs valid-* or invalid-*", name)
			}
		})
	}
}

// TestLoadConfig reads a file and checks what each field became,
// defaults included.
func TestLoadConfig(t *testing.T) {
	t.Parallel()
	c, err := falco.LoadConfig("../testdata/routing/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Name, Playbook, DedupKey string
		Params                   map[string]any
		ParamNames               []string
		Window                   time.Duration
		DryRun                   bool
		Line                     int
	}
	var got []rule
	for _, r := range c.Rules {
		got = append(got, rule{r.Name, r.Playbook, r.DedupKey, r.Params, r.ParamNames(), r.Window, r.DryRun, r.Pos.Line})
	}
	want := []rule{
		{
			Name: "contain-critical-prod", Playbook: "contain-pod", DedupKey: "${k8s.ns.name}/${k8s.pod.name}",
			Params: map[string]any{
				"namespace": "${k8s.ns.name}", "name": "${k8s.pod.name}", "detach": true,
				"allowEgressCIDRs": []any{"10.0.0.0/8"},
			},
			ParamNames: []string{"allowEgressCIDRs", "detach", "name", "namespace"},
			Window:     10 * time.Minute, Line: 7,
		},
		{
			Name: "collect-shells", Playbook: "collect-pod", DedupKey: "${container.id}",
			Params:     map[string]any{"namespace": "${k8s.ns.name}", "name": "${k8s.pod.name}"},
			ParamNames: []string{"name", "namespace"},
			Window:     15 * time.Minute, DryRun: true, Line: 28,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if c.DedupWindow != 15*time.Minute {
		t.Errorf("DedupWindow = %v, want 15m", c.DedupWindow)
	}
	if diff := cmp.Diff([]string{"collect-pod", "contain-pod"}, c.Playbooks()); diff != "" {
		t.Errorf("Playbooks (-want +got):\n%s", diff)
	}

	if _, err := falco.LoadConfig("../testdata/routing/no-such-file.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: want an error wrapping os.ErrNotExist, got %v", err)
	}
}

// TestParseConfigTooLarge refuses a file over the size limit without
// parsing it.
func TestParseConfigTooLarge(t *testing.T) {
	t.Parallel()
	big := []byte("# " + strings.Repeat("x", 1<<20) + "\n")
	_, err := falco.ParseConfig("big.yaml", big)
	if err == nil || !strings.Contains(err.Error(), "big.yaml: file is over 1048576 bytes") {
		t.Errorf("got %v", err)
	}
}

// TestConfigCheck reports what the caller's check rejects at each rule's
// playbook.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	c, err := falco.LoadConfig("../testdata/routing/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string][]string{"contain-pod": {"namespace", "name", "detach", "allowEgressCIDRs"}}
	err = c.Check(func(r *falco.Rule) error {
		takes, ok := known[r.Playbook]
		if !ok {
			return fmt.Errorf("no playbook %q", r.Playbook)
		}
		for _, p := range r.ParamNames() {
			if !strings.Contains(strings.Join(takes, ","), p) {
				return fmt.Errorf("playbook %s takes no parameter %q", r.Playbook, p)
			}
		}
		return nil
	})
	want := `../testdata/routing/valid-full.yaml:32:15: rule "collect-shells": no playbook "collect-pod"`
	if err == nil || err.Error() != want {
		t.Errorf("Check:\n got %v\nwant %s", err, want)
	}
	if err := c.Check(func(*falco.Rule) error { return nil }); err != nil {
		t.Errorf("Check accepting everything: %v", err)
	}
}

// TestDefaultConfig checks the built-in routing's one rule.
func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	c := falco.DefaultConfig()
	if len(c.Rules) != 1 {
		t.Fatalf("want one rule, got %d", len(c.Rules))
	}
	r := c.Rules[0]
	if r.Name != "contain-critical" || r.Playbook != "contain-pod" || r.DedupKey != falco.DefaultDedupKey || r.Window != 10*time.Minute || r.DryRun {
		t.Errorf("rule = %+v", r)
	}
	if diff := cmp.Diff([]string{"name", "namespace"}, r.ParamNames()); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}
