package falco

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// maxValueBytes bounds a substituted string: output fields hold whatever
// the attacker's process did (a command line, a file name), and a
// playbook parameter has no use for kilobytes of it.
const maxValueBytes = 1024

// Match is one rule an alert matched, ready to run.
type Match struct {
	// Rule is the name of the routing rule.
	Rule string
	// Playbook is the playbook to run.
	Playbook string
	// Params are the playbook's parameters with every ${field} substituted:
	// a fresh copy the caller may keep. Substituted values are strings,
	// even when the whole value is one ${field}; the playbook converts
	// them to its parameters' types.
	Params map[string]any
	// Key is the dedup key, "<playbook>:<substituted dedup key>".
	Key string
	// Window is how long Key suppresses the same key again; zero means
	// never.
	Window time.Duration
	// DryRun says to report what would run and run nothing.
	DryRun bool
}

// Skip is a rule whose conditions an alert met but which cannot run for
// it, with the reason, so that the receiver can record why nothing ran.
type Skip struct {
	Rule     string
	Playbook string
	// Reason says what was wrong, such as "field k8s.pod.name missing".
	Reason string
}

// Route returns what the alert should run: a Match for every rule, in
// config order, whose conditions the alert meets and whose params and
// dedup key can be filled from its fields; and a Skip for every rule
// whose conditions it meets but whose params or key refer to a field the
// alert lacks or has empty, or come out longer than 1024 bytes.
func (c *Config) Route(a *Alert) (matches []Match, skipped []Skip) {
	if c == nil || a == nil {
		return nil, nil
	}
	for _, r := range c.Rules {
		if !r.match.matches(a) {
			continue
		}
		m, reason := r.fill(a)
		if reason != "" {
			skipped = append(skipped, Skip{Rule: r.Name, Playbook: r.Playbook, Reason: reason})
			continue
		}
		matches = append(matches, m)
	}
	return matches, skipped
}

// fill substitutes the alert's fields into the rule's params and key.
func (r *Rule) fill(a *Alert) (Match, string) {
	x := &expander{rule: r, fields: a.Fields}
	params := make(map[string]any, len(r.Params))
	for _, name := range r.ParamNames() {
		params[name] = x.value(r.Params[name], "params."+name)
	}
	key := x.value(r.DedupKey, "dedup.key").(string)
	if reason := x.reason(); reason != "" {
		return Match{}, reason
	}
	return Match{
		Rule:     r.Name,
		Playbook: r.Playbook,
		Params:   params,
		Key:      r.Playbook + ":" + key,
		Window:   r.Window,
		DryRun:   r.DryRun,
	}, ""
}

// expander substitutes fields into values, noting what it cannot.
type expander struct {
	rule    *Rule
	fields  map[string]string
	missing []string // fields the alert lacks
	empty   []string // fields the alert has empty
	long    []string // values over maxValueBytes
}

// value returns a copy of v with its strings' references substituted.
func (x *expander) value(v any, where string) any {
	switch v := v.(type) {
	case string:
		t, err := x.rule.template(v)
		if err != nil { // checked when the config was loaded
			return v
		}
		var b strings.Builder
		for _, s := range t {
			if s.ref == "" {
				b.WriteString(s.text)
				continue
			}
			f, ok := x.fields[s.ref]
			switch {
			case !ok:
				x.note(&x.missing, s.ref)
			case f == "":
				x.note(&x.empty, s.ref)
			}
			b.WriteString(f)
		}
		if b.Len() > maxValueBytes {
			x.long = append(x.long, fmt.Sprintf("%s would be %d bytes, over the limit of %d", where, b.Len(), maxValueBytes))
		}
		return b.String()
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = x.value(item, fmt.Sprintf("%s[%d]", where, i))
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out[k] = x.value(v[k], where+"."+k)
		}
		return out
	}
	return v
}

// template returns s parsed, from the rule's cache.
func (r *Rule) template(s string) (template, error) {
	if t, ok := r.templates.Load(s); ok {
		return t.(template), nil
	}
	t, err := parseTemplate(s)
	if err == nil {
		r.templates.Store(s, t)
	}
	return t, err
}

func (x *expander) note(list *[]string, field string) {
	if !slices.Contains(*list, field) {
		*list = append(*list, field)
	}
}

// reason says why the values cannot be used, or "".
func (x *expander) reason() string {
	slices.Sort(x.missing)
	slices.Sort(x.empty)
	var parts []string
	switch len(x.missing) {
	case 0:
	case 1:
		parts = append(parts, "field "+x.missing[0]+" missing")
	default:
		parts = append(parts, "fields "+strings.Join(x.missing, ", ")+" missing")
	}
	switch len(x.empty) {
	case 0:
	case 1:
		parts = append(parts, "field "+x.empty[0]+" is empty")
	default:
		parts = append(parts, "fields "+strings.Join(x.empty, ", ")+" are empty")
	}
	parts = append(parts, x.long...)
	return strings.Join(parts, "; ")
}

// criteria are a rule's match conditions. Every condition given must hold;
// within rules, tags and source any one entry will do; every field
// condition must hold.
type criteria struct {
	rules    []string
	priority *priorityCond
	tags     []string
	source   string
	fields   []fieldCond
}

func (c *criteria) matches(a *Alert) bool {
	if c.rules != nil && !slices.Contains(c.rules, a.Rule) {
		return false
	}
	if c.source != "" && c.source != a.Source {
		return false
	}
	if c.priority != nil && !c.priority.holds(a.Priority) {
		return false
	}
	if c.tags != nil && !slices.ContainsFunc(c.tags, func(t string) bool { return slices.Contains(a.Tags, t) }) {
		return false
	}
	for _, f := range c.fields {
		if !f.holds(a.Fields) {
			return false
		}
	}
	return true
}

// priorityCond compares an alert's priority with a given one.
type priorityCond struct {
	op string // one of >=, >, <=, <, =
	p  Priority
}

// parsePriorityCond parses ">=Critical", "<Warning", "=Notice" or "Notice".
func parsePriorityCond(s string) (priorityCond, error) {
	rest := strings.TrimSpace(s)
	op := "="
	for _, o := range []string{">=", "<=", ">", "<", "="} {
		if after, ok := strings.CutPrefix(rest, o); ok {
			op, rest = o, strings.TrimSpace(after)
			break
		}
	}
	p, err := ParsePriority(rest)
	if err != nil {
		return priorityCond{}, fmt.Errorf("%s is not a priority condition: want an optional >=, >, <=, < or = and a priority: Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug", quote(s))
	}
	return priorityCond{op: op, p: p}, nil
}

func (c priorityCond) holds(p Priority) bool {
	switch c.op {
	case ">=":
		return p >= c.p
	case ">":
		return p > c.p
	case "<=":
		return p <= c.p
	case "<":
		return p < c.p
	}
	return p == c.p
}

// fieldCond is a condition on one output field.
type fieldCond struct {
	name  string
	op    string // =, !=, set (name alone), unset (!name)
	value string
}

// parseFieldCond parses "name=value", "name!=value", "name" or "!name".
// Spaces around the name and the value are dropped.
func parseFieldCond(s string) (fieldCond, error) {
	var c fieldCond
	if i := strings.IndexByte(s, '='); i >= 0 {
		c.name, c.value, c.op = s[:i], strings.TrimSpace(s[i+1:]), "="
		if strings.HasSuffix(c.name, "!") {
			c.name, c.op = strings.TrimSuffix(c.name, "!"), "!="
		}
	} else if name, ok := strings.CutPrefix(strings.TrimSpace(s), "!"); ok {
		c.name, c.op = name, "unset"
	} else {
		c.name, c.op = s, "set"
	}
	c.name = strings.TrimSpace(c.name)
	if c.name == "" {
		return c, fmt.Errorf("%s names no field: want field=value, field!=value, field (it is set) or !field (it is not)", quote(s))
	}
	if err := checkFieldName(c.name); err != nil {
		return c, fmt.Errorf("%s: %v", quote(s), err)
	}
	return c, nil
}

// holds reports whether the condition holds for an alert's fields. A field
// the alert lacks equals nothing, so != holds for it; set needs a
// non-empty value.
func (c fieldCond) holds(fields map[string]string) bool {
	v, ok := fields[c.name]
	switch c.op {
	case "=":
		return ok && v == c.value
	case "!=":
		return !ok || v != c.value
	case "set":
		return ok && v != ""
	}
	return !ok || v == "" // unset
}
