package falco_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"kir.dev/kir/falco"
)

// FuzzDecode feeds Decode arbitrary bytes, seeded with the sample alerts:
// it must never panic; what it accepts must have a valid priority, no
// "<NA>" field, a Vars that encodes as JSON, and route without panicking;
// its strings must read as encoding/json reads them; what it refuses it
// must explain in one line.
func FuzzDecode(f *testing.F) {
	falco.AddFileSeeds(f, "../testdata/falco/*.json")
	f.Add([]byte(`{"rule":"R","priority":"info","output_fields":{"a":[{"b":null}],"n":-0.5e-3}}`))
	c := falco.DefaultConfig()
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := falco.Decode(b)
		if err != nil {
			if a != nil {
				t.Fatalf("an alert with the error %v", err)
			}
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("error %q is not one line", msg)
			}
			return
		}
		if !a.Priority.Valid() {
			t.Fatalf("decoded priority %d is not valid", a.Priority)
		}
		if a.Rule == "" || a.Fields == nil {
			t.Fatalf("decoded alert without a rule or fields: %+v", a)
		}
		for k, v := range a.Fields {
			if v == "<NA>" {
				t.Fatalf("field %q is <NA>", k)
			}
		}
		// The strings read without encoding/json's decoder are its own.
		var ref map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // numbers beyond float64 are valid JSON too
		if err := dec.Decode(&ref); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		for key, got := range map[string]string{"rule": a.Rule, "output": a.Output, "uuid": a.UUID} {
			if want, _ := ref[key].(string); got != want {
				t.Fatalf("%s decoded as %q, encoding/json says %q", key, got, want)
			}
		}
		if list, ok := ref["tags"].([]any); ok {
			want := make([]string, len(list))
			for i, v := range list {
				want[i], _ = v.(string)
			}
			if !slices.Equal(a.Tags, want) {
				t.Fatalf("tags decoded as %q, encoding/json says %q", a.Tags, want)
			}
		}
		if want := refFields(b); want != nil && !maps.Equal(a.Fields, want) {
			t.Fatalf("output_fields decoded as %q, encoding/json says %q", a.Fields, want)
		}
		if _, err := json.Marshal(a.Vars()); err != nil {
			t.Fatalf("encoding Vars: %v", err)
		}
		c.Route(a)
	})
}

// refFields is what Decode makes of output_fields, by encoding/json: null
// and "<NA>" dropped, strings decoded, the rest compacted; nil when alert
// has no output_fields object.
func refFields(alert []byte) map[string]string {
	var top map[string]json.RawMessage
	var fields map[string]json.RawMessage
	if json.Unmarshal(alert, &top) != nil || json.Unmarshal(top["output_fields"], &fields) != nil || fields == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range fields {
		v = bytes.TrimSpace(v)
		switch v[0] {
		case 'n':
		case '"':
			var s string
			_ = json.Unmarshal(v, &s)
			if s != "<NA>" {
				out[k] = s
			}
		case '{', '[':
			var buf bytes.Buffer
			_ = json.Compact(&buf, v)
			out[k] = buf.String()
		default:
			out[k] = string(v)
		}
	}
	return out
}

// FuzzParseConfig feeds ParseConfig arbitrary bytes, seeded with the
// routing configs in testdata: it must never panic, and must either parse
// or explain why with positioned problems.
func FuzzParseConfig(f *testing.F) {
	falco.AddFileSeeds(f, "../testdata/routing/*.yaml")
	a := &falco.Alert{Rule: "R", Priority: falco.PriorityCritical, Fields: map[string]string{"k8s.ns.name": "ns", "k8s.pod.name": "pod"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := falco.ParseConfig("fuzz.yaml", b)
		if err != nil {
			var ce *falco.ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("want a *ConfigError with problems, got %T %v", err, err)
			}
			return
		}
		for _, r := range c.Rules {
			if r.Name == "" || r.Playbook == "" {
				t.Fatalf("parsed a rule without a name or playbook: %+v", r)
			}
		}
		c.Route(a)
	})
}
