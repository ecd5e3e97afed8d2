package falco

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"kir.dev/kir/notify"
)

// The routing format's identifiers.
const (
	APIVersion = "kir.dev/v1alpha1"
	Kind       = "Routing"
)

// Defaults of a rule's dedup settings.
const (
	// DefaultDedupKey groups alerts by pod: one run per pod and playbook
	// within the window, however many alerts the pod raises.
	DefaultDedupKey = "${k8s.ns.name}/${k8s.pod.name}"
	// DefaultDedupWindow is the window when neither the rule nor
	// defaults.dedupWindow sets one.
	DefaultDedupWindow = 10 * time.Minute
)

// maxConfigSize bounds a routing config file; real ones are a few kilobytes.
const maxConfigSize = 1 << 20

// Config is a loaded, validated routing config: which playbook runs, with
// which parameters, for which alerts.
type Config struct {
	// Source is the file the config came from, or builtin:routing.yaml.
	Source string
	// DedupWindow is defaults.dedupWindow, or DefaultDedupWindow.
	DedupWindow time.Duration
	// Rules are the routing rules, in file order.
	Rules []*Rule
	// Notifications say whom kir serve tells of the runs it held,
	// finished, failed or refused (package notify); nil tells nobody.
	Notifications *notify.Config
}

// Rule is one routing rule: when an alert matches, its playbook runs with
// its parameters.
type Rule struct {
	// Name is unique in the config; runs and records refer to it.
	Name string
	// Playbook is the name of the playbook to run.
	Playbook string
	// Params are the playbook's parameters as written: literals (string,
	// bool, int64, float64, and lists and maps of them), with strings that
	// may hold ${field} references, substituted by Route.
	Params map[string]any
	// DedupKey is the dedup key template, DefaultDedupKey if not set.
	DedupKey string
	// Window is how long a routed key suppresses the same key again; zero
	// turns deduplication off for the rule.
	Window time.Duration
	// DryRun says the rule only reports what it would run.
	DryRun bool
	// Pos is where the rule starts in its file.
	Pos Pos

	match       criteria
	playbookPos Pos
	// templates holds the templates of Params and DedupKey parsed, by
	// their text: every alert routed fills the same few.
	templates sync.Map // string → template
}

// ParamNames returns the names of the rule's parameters, sorted.
func (r *Rule) ParamNames() []string {
	names := make([]string, 0, len(r.Params))
	for k := range r.Params {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Playbooks returns the names of the playbooks the rules run, sorted, each
// once.
func (c *Config) Playbooks() []string {
	var names []string
	for _, r := range c.Rules {
		if !slices.Contains(names, r.Playbook) {
			names = append(names, r.Playbook)
		}
	}
	slices.Sort(names)
	return names
}

// Check calls check for every rule, in order, and returns what it
// rejects as a *ConfigError positioned at each rule's playbook, so that a
// caller who knows the playbooks (whether each exists, which parameters it
// takes) reports problems the way the config's own are reported. It
// returns nil when check accepts every rule.
func (c *Config) Check(check func(r *Rule) error) error {
	ps := &problems{file: c.Source}
	for _, r := range c.Rules {
		if err := check(r); err != nil {
			ps.add(r.playbookPos.Line, r.playbookPos.Col, "rule %q: %v", r.Name, err)
		}
	}
	return ps.err()
}

// LoadConfig reads and parses the routing config in the file at path.
// Problems with its content are a *ConfigError.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading routing config: %w", err)
	}
	defer f.Close()
	// One byte over the limit is enough for ParseConfig to report it.
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading routing config %s: %w", path, err)
	}
	return ParseConfig(path, b)
}

// ParseConfig parses a routing config; name is the file name its problems
// are reported under. It reports every problem it finds at once, in a
// *ConfigError.
func ParseConfig(name string, b []byte) (*Config, error) {
	c, ps := decodeConfig(name, b)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// defaultConfig is the routing kir serve uses when given none: contain
// the pod of every alert of priority Critical or higher. An alert without
// a pod's namespace and name is recorded and skipped; lower priorities are
// recorded only.
const defaultConfig = `apiVersion: kir.dev/v1alpha1
kind: Routing
rules:
  - name: contain-critical
    match:
      priority: ">=Critical"
    playbook: contain-pod
    params:
      namespace: ${k8s.ns.name}
      name: ${k8s.pod.name}
`

// DefaultConfig returns the built-in routing: one rule, contain-critical,
// that runs the contain-pod playbook with namespace and name taken from
// k8s.ns.name and k8s.pod.name for every alert of priority Critical or
// higher, deduplicated per pod for DefaultDedupWindow. An alert that lacks
// either field is skipped with the reason; alerts of lower priorities
// match no rule.
func DefaultConfig() *Config {
	c, err := ParseConfig("builtin:routing.yaml", []byte(defaultConfig))
	if err != nil {
		panic("falco: the built-in routing config does not parse: " + err.Error())
	}
	return c
}
