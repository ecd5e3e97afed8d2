package falco_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/falco"
)

// oneRule parses a config with one rule, named r, running playbook p with
// the given match (YAML, indented as under match:) and extra rule keys.
func oneRule(t *testing.T, match, extra string) *falco.Config {
	t.Helper()
	src := "apiVersion: kir.dev/v1alpha1\nkind: Routing\nrules:\n  - name: r\n    playbook: p\n    match:\n" + match + extra
	c, err := falco.ParseConfig("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", src, err)
	}
	return c
}

// alert is the alert most matching cases start from.
func alert() *falco.Alert {
	return &falco.Alert{
		Rule:     "Drop and execute new binary in container",
		Priority: falco.PriorityCritical,
		Source:   "syscall",
		Tags:     []string{"container", "mitre_persistence"},
		Fields: map[string]string{
			"k8s.ns.name":                "prod",
			"k8s.pod.name":               "checkout-5d7f9c8b4-q7wlm",
			"container.image.repository": "registry.acme.io/payments/checkout",
			"proc.tty":                   "0",
			"empty":                      "",
		},
	}
}

// TestRouteMatch checks each condition, alone and together, against
// alerts that should and should not match.
func TestRouteMatch(t *testing.T) {
	t.Parallel()
	with := func(f func(a *falco.Alert)) *falco.Alert { a := alert(); f(a); return a }
	prio := func(p falco.Priority) *falco.Alert { return with(func(a *falco.Alert) { a.Priority = p }) }
	tests := []struct {
		name  string
		match string
		alert *falco.Alert
		want  bool
	}{
		// rules: any of them
		{"rule listed", `      rules: [Terminal shell in container, Drop and execute new binary in container]`, alert(), true},
		{"rule not listed", `      rules: [Terminal shell in container]`, alert(), false},
		{"rule names are case-sensitive", `      rules: [drop and execute new binary in container]`, alert(), false},

		// priority
		{">= equal", `      priority: ">=Critical"`, prio(falco.PriorityCritical), true},
		{">= above", `      priority: ">=Critical"`, prio(falco.PriorityEmergency), true},
		{">= below", `      priority: ">=Critical"`, prio(falco.PriorityError), false},
		{"> equal", `      priority: ">Critical"`, prio(falco.PriorityCritical), false},
		{"> above", `      priority: ">Critical"`, prio(falco.PriorityAlert), true},
		{"<= equal", `      priority: "<=Notice"`, prio(falco.PriorityNotice), true},
		{"<= above", `      priority: "<=Notice"`, prio(falco.PriorityWarning), false},
		{"< below", `      priority: "<Notice"`, prio(falco.PriorityDebug), true},
		{"< equal", `      priority: "<Notice"`, prio(falco.PriorityNotice), false},
		{"= equal", `      priority: "=Warning"`, prio(falco.PriorityWarning), true},
		{"= other", `      priority: "=Warning"`, prio(falco.PriorityError), false},
		{"bare name is =", `      priority: warning`, prio(falco.PriorityWarning), true},
		{"bare name is not >=", `      priority: Warning`, prio(falco.PriorityCritical), false},
		{"space after the operator", `      priority: ">= info"`, prio(falco.PriorityInformational), true},

		// tags: any of them
		{"one tag of several", `      tags: [shell, container]`, alert(), true},
		{"no tag", `      tags: [shell, network]`, alert(), false},
		{"alert without tags", `      tags: [container]`, with(func(a *falco.Alert) { a.Tags = nil }), false},

		// source
		{"source", `      source: syscall`, alert(), true},
		{"other source", `      source: k8s_audit`, alert(), false},
		{"alert without source", `      source: syscall`, with(func(a *falco.Alert) { a.Source = "" }), false},

		// fields: every one
		{"= equal", `      fields: [k8s.ns.name=prod]`, alert(), true},
		{"= other", `      fields: [k8s.ns.name=staging]`, alert(), false},
		{"= absent", `      fields: [k8s.node.name=prod]`, alert(), false},
		{"= empty value", `      fields: ["empty="]`, alert(), true},
		{"= empty value, absent field", `      fields: ["absent="]`, alert(), false},
		{"= spaces dropped", `      fields: [" k8s.ns.name = prod "]`, alert(), true},
		{"= value with =", `      fields: ["k8s.ns.name=a=b"]`, with(func(a *falco.Alert) { a.Fields["k8s.ns.name"] = "a=b" }), true},
		{"!= other", `      fields: [container.image.repository!=registry.internal/debug]`, alert(), true},
		{"!= equal", `      fields: [container.image.repository!=registry.acme.io/payments/checkout]`, alert(), false},
		{"!= absent holds", `      fields: [k8s.node.name!=worker-1]`, alert(), true},
		{"set", `      fields: [k8s.pod.name]`, alert(), true},
		{"set, absent", `      fields: [k8s.node.name]`, alert(), false},
		{"set, empty", `      fields: [empty]`, alert(), false},
		{"!set, absent", `      fields: ["!k8s.node.name"]`, alert(), true},
		{"!set, empty", `      fields: ["!empty"]`, alert(), true},
		{"!set, present", `      fields: ["!k8s.pod.name"]`, alert(), false},
		{"all fields hold", `      fields: [k8s.ns.name=prod, k8s.pod.name, "proc.tty=0"]`, alert(), true},
		{"one field fails", `      fields: [k8s.ns.name=prod, k8s.pod.name, "proc.tty=1"]`, alert(), false},

		// every condition together
		{"all hold", "      rules: [Drop and execute new binary in container]\n      priority: \">=Error\"\n      tags: [container]\n      source: syscall\n      fields: [k8s.ns.name=prod]", alert(), true},
		{"all but priority", "      rules: [Drop and execute new binary in container]\n      priority: \">=Alert\"\n      tags: [container]\n      source: syscall\n      fields: [k8s.ns.name=prod]", alert(), false},
		{"all but tags", "      rules: [Drop and execute new binary in container]\n      priority: \">=Error\"\n      tags: [shell]\n      source: syscall\n      fields: [k8s.ns.name=prod]", alert(), false},
		{"all but fields", "      rules: [Drop and execute new binary in container]\n      priority: \">=Error\"\n      tags: [container]\n      source: syscall\n      fields: [k8s.ns.name=dev]", alert(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := oneRule(t, tt.match+"\n", "    dedup: {key: fixed}\n")
			matches, skipped := c.Route(tt.alert)
			if len(skipped) > 0 {
				t.Fatalf("skipped: %+v", skipped)
			}
			if got := len(matches) == 1; got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRouteParams checks what matches carry: substituted params, key,
// window and dry run; and why a matching rule is skipped.
func TestRouteParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		extra  string
		alert  *falco.Alert
		want   []falco.Match
		reason string
	}{
		{
			name: "substitution and literals",
			extra: `    params:
      namespace: ${k8s.ns.name}
      name: ${k8s.pod.name}
      detach: true
      count: 3
      ratio: 0.5
      note: "pod ${k8s.ns.name}/${k8s.pod.name} on tty ${proc.tty} costs $${PRICE}"
      cidrs: ["10.0.0.0/8", "${proc.tty}"]
      labels: {team: "${k8s.ns.name}", fixed: x}
`,
			alert: alert(),
			want: []falco.Match{{
				Rule: "r", Playbook: "p",
				Params: map[string]any{
					"namespace": "prod", "name": "checkout-5d7f9c8b4-q7wlm", "detach": true, "count": int64(3), "ratio": 0.5,
					"note":   "pod prod/checkout-5d7f9c8b4-q7wlm on tty 0 costs ${PRICE}",
					"cidrs":  []any{"10.0.0.0/8", "0"},
					"labels": map[string]any{"team": "prod", "fixed": "x"},
				},
				Key: "p:prod/checkout-5d7f9c8b4-q7wlm", Window: 10 * time.Minute,
			}},
		},
		{
			name:  "a whole ${field} stays a string",
			extra: "    params:\n      tty: ${proc.tty}\n",
			alert: alert(),
			want:  []falco.Match{{Rule: "r", Playbook: "p", Params: map[string]any{"tty": "0"}, Key: "p:prod/checkout-5d7f9c8b4-q7wlm", Window: 10 * time.Minute}},
		},
		{
			name:  "dedup key, window and dry run",
			extra: "    dedup:\n      key: \"${container.image.repository}\"\n      window: 0s\n    dryRun: true\n",
			alert: alert(),
			want:  []falco.Match{{Rule: "r", Playbook: "p", Params: map[string]any{}, Key: "p:registry.acme.io/payments/checkout", DryRun: true}},
		},
		{
			name:   "param field missing",
			extra:  "    params:\n      node: ${k8s.node.name}\n",
			alert:  alert(),
			reason: "field k8s.node.name missing",
		},
		{
			name:   "default dedup key's fields missing",
			extra:  "    params:\n      tty: ${proc.tty}\n",
			alert:  &falco.Alert{Rule: "x", Priority: falco.PriorityCritical, Fields: map[string]string{"proc.tty": "1"}},
			reason: "fields k8s.ns.name, k8s.pod.name missing",
		},
		{
			name:   "missing, empty and too long at once",
			extra:  "    params:\n      a: ${x.missing}\n      b: ${empty}\n      c: \"${long} ${long}\"\n    dedup: {key: \"${y.missing}\"}\n",
			alert:  &falco.Alert{Rule: "x", Priority: falco.PriorityCritical, Fields: map[string]string{"empty": "", "long": strings.Repeat("x", 600)}},
			reason: "fields x.missing, y.missing missing; field empty is empty; params.c would be 1201 bytes, over the limit of 1024",
		},
		{
			name:   "too long in a list",
			extra:  "    params:\n      l: [ok, \"${long}\"]\n    dedup: {key: k}\n",
			alert:  &falco.Alert{Rule: "x", Priority: falco.PriorityCritical, Fields: map[string]string{"long": strings.Repeat("x", 1025)}},
			reason: "params.l[1] would be 1025 bytes, over the limit of 1024",
		},
		{
			name:  "exactly the limit",
			extra: "    params:\n      l: \"${long}\"\n    dedup: {key: k}\n",
			alert: &falco.Alert{Rule: "x", Priority: falco.PriorityCritical, Fields: map[string]string{"long": strings.Repeat("x", 1024)}},
			want:  []falco.Match{{Rule: "r", Playbook: "p", Params: map[string]any{"l": strings.Repeat("x", 1024)}, Key: "p:k", Window: 10 * time.Minute}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := oneRule(t, "      priority: \">=Debug\"\n", tt.extra)
			matches, skipped := c.Route(tt.alert)
			if diff := cmp.Diff(tt.want, matches); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
			var want []falco.Skip
			if tt.reason != "" {
				want = []falco.Skip{{Rule: "r", Playbook: "p", Reason: tt.reason}}
			}
			if diff := cmp.Diff(want, skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRouteRules checks that every rule is tried, in config order, that
// Params are a fresh copy, and that defaults.dedupWindow applies.
func TestRouteRules(t *testing.T) {
	t.Parallel()
	src := `apiVersion: kir.dev/v1alpha1
kind: Routing
defaults: {dedupWindow: 1h}
rules:
  - name: first
    match: {priority: ">=Warning"}
    playbook: collect-pod
    params: {namespace: "${k8s.ns.name}", labels: {a: b}}
  - name: needs-node
    match: {tags: [container]}
    playbook: contain-node
    params: {node: "${k8s.node.name}"}
  - name: never
    match: {source: k8s_audit}
    playbook: contain-pod
  - name: last
    match: {rules: [Drop and execute new binary in container]}
    playbook: contain-pod
    params: {namespace: "${k8s.ns.name}"}
    dedup: {window: 5m}
`
	c, err := falco.ParseConfig("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	matches, skipped := c.Route(alert())
	var got []string
	for _, m := range matches {
		got = append(got, fmt.Sprintf("%s %s %s %v", m.Rule, m.Playbook, m.Key, m.Window))
	}
	want := []string{
		"first collect-pod collect-pod:prod/checkout-5d7f9c8b4-q7wlm 1h0m0s",
		"last contain-pod contain-pod:prod/checkout-5d7f9c8b4-q7wlm 5m0s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("matches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]falco.Skip{{Rule: "needs-node", Playbook: "contain-node", Reason: "field k8s.node.name missing"}}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	matches[0].Params["labels"].(map[string]any)["a"] = "changed"
	again, _ := c.Route(alert())
	if again[0].Params["labels"].(map[string]any)["a"] != "b" || c.Rules[0].Params["labels"].(map[string]any)["a"] != "b" {
		t.Errorf("a Match's Params share maps with the rule")
	}
	if m, s := c.Route(nil); m != nil || s != nil {
		t.Errorf("Route(nil) = %v, %v", m, s)
	}
}

// TestDefaultConfigSamples routes the sample alerts with the built-in
// config: Critical alerts from pods contain them, a Critical alert from
// the host is skipped with the reason, anything lower runs nothing.
func TestDefaultConfigSamples(t *testing.T) {
	t.Parallel()
	contain := func(ns, pod string) []falco.Match {
		return []falco.Match{{
			Rule: "contain-critical", Playbook: "contain-pod",
			Params: map[string]any{"namespace": ns, "name": pod},
			Key:    "contain-pod:" + ns + "/" + pod, Window: 10 * time.Minute,
		}}
	}
	tests := []struct {
		sample  string
		matches []falco.Match
		skipped []falco.Skip
	}{
		{"sidekick-drop-execute.json", contain("prod", "checkout-5d7f9c8b4-q7wlm"), nil},
		{"memfd-container.json", contain("prod", "storefront-84f6d9c7b-2hvxk"), nil},
		{"memfd-host-na.json", nil, []falco.Skip{{Rule: "contain-critical", Playbook: "contain-pod", Reason: "fields k8s.ns.name, k8s.pod.name missing"}}},
		{"terminal-shell.json", nil, nil},
		{"netcat-typed-fields.json", nil, nil},
		{"old-falco-read-sensitive.json", nil, nil},
		{"k8s-audit-exec.json", nil, nil},
	}
	c := falco.DefaultConfig()
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.sample, ".json"), func(t *testing.T) {
			t.Parallel()
			matches, skipped := c.Route(decodeSample(t, tt.sample))
			if diff := cmp.Diff(tt.matches, matches); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.skipped, skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}
