package falco

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxAlertSize bounds an alert Decode accepts. Falco's alerts are a few
// kilobytes; a receiver should read at most this much of a request body.
const MaxAlertSize = 1 << 20

// notAvailable is what Falco prints for a field that has no value for the
// event, such as k8s.pod.name for a process on the host.
const notAvailable = "<NA>"

// Alert is one Falco alert, as Falco's http_output (with json_output) and
// Falcosidekick's webhook output send it.
type Alert struct {
	// UUID is set when Falcosidekick forwarded the alert; Falco sends none.
	UUID string
	// Output is the alert's formatted text.
	Output string
	// Rule is the name of the Falco rule that fired.
	Rule string
	// Source is the event source, such as "syscall" or "k8s_audit";
	// empty when the sender gave none (older Falco releases).
	Source string
	// Hostname is the host Falco runs on; empty when the sender gave none.
	Hostname string
	// Priority is the rule's priority; always valid in a decoded alert.
	Priority Priority
	// Time is when the event happened; zero when the sender gave none.
	Time time.Time
	// Tags are the rule's tags; nil when the sender gave none.
	Tags []string
	// Fields are the output fields, as strings: numbers as sent, booleans
	// as "true" or "false", objects and lists as compact JSON. A field
	// Falco sent as null or "<NA>" is absent. Never nil in a decoded alert.
	Fields map[string]string
}

// Decode reads one alert from its JSON. It is lenient where real senders
// differ (unknown keys are ignored; tags, source, hostname, uuid, time and
// output_fields may be missing or null) and strict where a wrong value
// would mislead: rule and priority are required, and a known key with the
// wrong type is an error. Error messages are single lines that name the
// key at fault and quote little of the input, so that a receiver can send
// them back as they are. The alert's strings share one copy of b: a caller
// that keeps one of them without the alert should copy it (strings.Clone).
func Decode(b []byte) (*Alert, error) {
	if len(b) > MaxAlertSize {
		return nil, fmt.Errorf("alert is %d bytes: at most %d", len(b), MaxAlertSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty alert: want a Falco alert as a JSON object")
	}
	// One copy, which every string of the alert shares (see valid).
	s := string(b)
	if !valid(s) {
		var v any
		err := json.Unmarshal(b, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("alert is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return nil, errors.New("alert is not valid JSON")
	}
	if s = strings.TrimSpace(s); s[0] != '{' {
		return nil, fmt.Errorf("alert must be a JSON object, not %s", jsonKind(s))
	}
	// The raw values of the keys Decode reads; "" for a key not given (a
	// JSON value is never empty). The last of a repeated key wins, as in
	// encoding/json.
	var top struct{ uuid, output, priority, rule, time, source, hostname, tags, fields string }
	members(s, func(key, value string) {
		switch key {
		case "uuid":
			top.uuid = value
		case "output":
			top.output = value
		case "priority":
			top.priority = value
		case "rule":
			top.rule = value
		case "time":
			top.time = value
		case "source":
			top.source = value
		case "hostname":
			top.hostname = value
		case "tags":
			top.tags = value
		case "output_fields":
			top.fields = value
		}
	})
	a := &Alert{}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	str := func(key, raw string, dst *string) bool {
		if !present(raw) {
			return false
		}
		if raw[0] != '"' {
			bad("%s must be a string, not %s", key, jsonKind(raw))
			return false
		}
		*dst = jsonString(raw)
		return true
	}
	switch {
	case !present(top.rule):
		bad("rule is missing")
	case str("rule", top.rule, &a.Rule) && a.Rule == "":
		bad("rule is empty")
	}
	var prio string
	switch {
	case !present(top.priority):
		bad("priority is missing")
	case str("priority", top.priority, &prio):
		p, err := ParsePriority(prio)
		if err != nil {
			bad("%v", err)
		}
		a.Priority = p
	}
	var ts string
	if str("time", top.time, &ts) && ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			bad("time %s is not an RFC 3339 time such as 2026-11-25T20:45:12.123456789Z", quote(ts))
		} else {
			a.Time = t
		}
	}
	str("output", top.output, &a.Output)
	str("uuid", top.uuid, &a.UUID)
	str("source", top.source, &a.Source)
	str("hostname", top.hostname, &a.Hostname)

	if present(top.tags) {
		tags, err := decodeTags(top.tags)
		if err != nil {
			bad("%v", err)
		}
		a.Tags = tags
	}
	a.Fields = map[string]string{}
	if present(top.fields) {
		fields, err := decodeFields(top.fields)
		if err != nil {
			bad("%v", err)
		}
		a.Fields = fields
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return a, nil
}

func decodeTags(raw string) ([]string, error) {
	if raw[0] != '[' {
		return nil, fmt.Errorf("tags must be a list of strings, not %s", jsonKind(raw))
	}
	n := 0
	elements(raw, func(string) { n++ })
	tags := make([]string, 0, n)
	var err error
	elements(raw, func(item string) {
		switch {
		case err != nil:
		case item[0] != '"':
			err = fmt.Errorf("tags must be a list of strings: item %d is %s", len(tags)+1, jsonKind(item))
		default:
			tags = append(tags, jsonString(item))
		}
	})
	if err != nil {
		return nil, err
	}
	return tags, nil
}

// decodeFields normalises output_fields into strings, dropping the values
// that say "no value".
func decodeFields(raw string) (map[string]string, error) {
	if raw[0] != '{' {
		return map[string]string{}, fmt.Errorf("output_fields must be an object, not %s", jsonKind(raw))
	}
	// Sized once: growing the map field by field costs more than a walk.
	n := 0
	each(raw, func(i int) int {
		n++
		i = skipSpace(raw, skipSpace(raw, stringEnd(raw, i))+1)
		return valueEnd(raw, i)
	})
	dst := make(map[string]string, n)
	members(raw, func(k, v string) {
		switch v[0] {
		case 'n':
			delete(dst, k) // the last of a repeated key wins
		case '"':
			if s := jsonString(v); s != notAvailable {
				dst[k] = s
			} else {
				delete(dst, k)
			}
		case '{', '[':
			var buf bytes.Buffer
			_ = json.Compact(&buf, []byte(v))
			dst[k] = buf.String()
		default: // true, false, or a number, kept as its text
			dst[k] = v
		}
	})
	return dst, nil
}

// present reports whether raw, a member's raw value, was given and is not
// null.
func present(raw string) bool { return raw != "" && raw[0] != 'n' }

// jsonKind names the kind of a valid JSON value for an error message.
func jsonKind(raw string) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// Field returns the output field name and whether the alert has it.
func (a *Alert) Field(name string) (string, bool) {
	v, ok := a.Fields[name]
	return v, ok
}

// Vars returns the alert as playbooks see it, under the name alert: rule,
// priority (its name), time (RFC 3339 with nanoseconds, in UTC; empty if
// the sender gave none), uuid, source, hostname, output, tags (a list of
// strings) and fields (a map of strings). It holds only JSON-like values,
// so it can be encoded and given to CEL as it is; it shares nothing with a.
func (a *Alert) Vars() map[string]any {
	tags := make([]any, len(a.Tags))
	for i, t := range a.Tags {
		tags[i] = t
	}
	fields := make(map[string]any, len(a.Fields))
	for k, v := range a.Fields {
		fields[k] = v
	}
	var t string
	if !a.Time.IsZero() {
		t = a.Time.UTC().Format(time.RFC3339Nano)
	}
	prio := ""
	if a.Priority.Valid() {
		prio = a.Priority.String()
	}
	return map[string]any{
		"rule":     a.Rule,
		"priority": prio,
		"time":     t,
		"uuid":     a.UUID,
		"source":   a.Source,
		"hostname": a.Hostname,
		"output":   a.Output,
		"tags":     tags,
		"fields":   fields,
	}
}

// maxEcho bounds how much of a sender's input an error message repeats:
// errors go back to the sender and into logs.
const maxEcho = 64

// quote returns s quoted for an error message, cut to maxEcho bytes on a
// character boundary.
func quote(s string) string {
	if len(s) <= maxEcho {
		return fmt.Sprintf("%q", s)
	}
	cut := maxEcho
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
