package falco

import (
	"fmt"
	"regexp"
	"time"

	"kir.dev/kir/notify"

	yaml "go.yaml.in/yaml/v3"

	"kir.dev/kir/internal/strictyaml"
)

// decoder turns a routing config's YAML into a Config, strictly: every
// unknown key, wrong type or missing field is a problem at its line and
// column, and one pass reports as many as it can.
type decoder struct {
	*strictyaml.Decoder
	file string
}

// yamlFormat is how a routing config reads as YAML, where kir's formats
// differ: only !!str is a string, and its problems explain more.
var yamlFormat = strictyaml.Format{
	Want:        "a Routing config",
	OneDocument: "put the whole routing config in one",
	AliasesIn:   "a routing config",
	Hint:        quoteHint,
	TagHint:     true,
	Floats:      true,
	TrimPrefix:  true,
}

var (
	// nameRE is a rule's name, and a playbook's (as in playbooks).
	nameRE  = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	identRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,62}$`)
)

// decodeConfig parses data, returning the config as far as it could be
// read and the problems found.
func decodeConfig(file string, data []byte) (*Config, *problems) {
	ps := &problems{file: file}
	c := &Config{Source: file, DedupWindow: DefaultDedupWindow}
	if len(data) > maxConfigSize {
		ps.add(0, 0, "file is over %d bytes: a routing config is at most that", maxConfigSize)
		return c, ps
	}
	d := &decoder{Decoder: strictyaml.NewDecoder(&ps.Problems, yamlFormat), file: file}
	root, ok := d.Document(data)
	if !ok {
		return c, ps
	}
	var apiVersion, kind string
	var rules []*Rule
	windows := map[*Rule]bool{} // rules that set dedup.window
	d.Mapping(root, "routing config", map[string]func(*yaml.Node){
		"apiVersion": func(n *yaml.Node) { apiVersion = d.Str(n, "apiVersion") },
		"kind":       func(n *yaml.Node) { kind = d.Str(n, "kind") },
		"defaults": func(n *yaml.Node) {
			d.Mapping(n, "defaults", map[string]func(*yaml.Node){
				"dedupWindow": func(n *yaml.Node) {
					if w, ok := d.duration(n, "defaults.dedupWindow"); ok {
						c.DedupWindow = w
					}
				},
			})
		},
		"notifications": func(n *yaml.Node) { c.Notifications = d.notifications(n) },
		"rules": func(n *yaml.Node) {
			for _, item := range d.Seq(n, "rules") {
				r, setWindow := d.rule(item)
				rules = append(rules, r)
				windows[r] = setWindow
			}
		},
	})
	if root.Kind == yaml.MappingNode {
		d.Expect(root, "apiVersion", apiVersion, APIVersion)
		d.Expect(root, "kind", kind, Kind)
		if strictyaml.ValueOf(root, "rules") == nil {
			d.At(root, "rules is missing: give a list of rules (an empty list routes nothing)")
		}
	}
	seen := map[string]*Rule{}
	for _, r := range rules {
		if !windows[r] {
			r.Window = c.DedupWindow
		}
		if r.Name == "" {
			continue
		}
		if first, dup := seen[r.Name]; dup {
			d.Add(r.Pos.Line, r.Pos.Col, "rule name %q used twice (first at line %d)", r.Name, first.Pos.Line)
			continue
		}
		seen[r.Name] = r
	}
	c.Rules = rules
	return c, ps
}

// notifications decodes the notifications section (package notify
// checks it: its problems are reported at the section's line).
func (d *decoder) notifications(n *yaml.Node) *notify.Config {
	raw, err := yaml.Marshal(n)
	if err != nil {
		d.Add(n.Line, n.Column, "notifications: %v", err)
		return nil
	}
	c, err := notify.ParseConfig(raw)
	if err != nil {
		d.Add(n.Line, n.Column, "%v", err)
		return nil
	}
	return c
}

// priorityRE spots an unquoted priority condition: YAML reads the > of
// >=Critical as the start of a folded block.
var priorityRE = regexp.MustCompile(`^\s*(-\s+)?priority:\s*>`)

// quoteHint explains the usual cause of a syntax error near these lines.
func quoteHint(near [][]byte) string {
	for _, l := range near {
		if priorityRE.Match(l) {
			return ` (quote a priority condition: priority: ">=Critical")`
		}
	}
	return ""
}

// rule decodes one rule; setWindow says whether it set dedup.window.
func (d *decoder) rule(n *yaml.Node) (r *Rule, setWindow bool) {
	r = &Rule{Pos: d.pos(n), DedupKey: DefaultDedupKey}
	var sawMatch, sawPlaybook bool
	d.Mapping(n, "rule", map[string]func(*yaml.Node){
		"name": func(n *yaml.Node) {
			r.Name = d.Str(n, "rule name")
			if r.Name != "" && !nameRE.MatchString(r.Name) {
				d.At(n, "rule name %q is not a valid name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", r.Name)
			}
		},
		"match": func(n *yaml.Node) {
			sawMatch = true
			r.match = d.criteria(n)
		},
		"playbook": func(n *yaml.Node) {
			sawPlaybook = true
			r.playbookPos = d.pos(n)
			r.Playbook = d.Str(n, "playbook")
			switch {
			case !d.IsStr(n):
			case r.Playbook == "":
				d.At(n, "playbook is empty: name the playbook to run")
			case !nameRE.MatchString(r.Playbook):
				d.At(n, "playbook %q is not a playbook name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", r.Playbook)
			}
		},
		"params": func(n *yaml.Node) { r.Params = d.params(n) },
		"dedup": func(n *yaml.Node) {
			d.Mapping(n, "dedup", map[string]func(*yaml.Node){
				"key": func(n *yaml.Node) {
					key := d.Str(n, "dedup.key")
					if !d.IsStr(n) {
						return
					}
					if key == "" {
						d.At(n, "dedup.key is empty: leave it out for the default, %s", DefaultDedupKey)
						return
					}
					if _, err := parseTemplate(key); err != nil {
						d.At(n, "dedup.key %v", err)
						return
					}
					r.DedupKey = key
				},
				"window": func(n *yaml.Node) {
					if w, ok := d.duration(n, "dedup.window"); ok {
						r.Window, setWindow = w, true
					}
				},
			})
		},
		"dryRun": func(n *yaml.Node) { r.DryRun = d.Bool(n, "dryRun") },
	})
	if n.Kind != yaml.MappingNode {
		return r, setWindow
	}
	if strictyaml.ValueOf(n, "name") == nil {
		d.At(n, "rule without a name")
	}
	if !sawMatch {
		d.At(n, "%s has no match: say which alerts it acts on", ruleLabel(r))
	}
	if !sawPlaybook {
		r.playbookPos = r.Pos
		d.At(n, "%s has no playbook", ruleLabel(r))
	}
	if r.Params == nil {
		r.Params = map[string]any{}
	}
	return r, setWindow
}

// ruleLabel names a rule in a message, even one without a name.
func ruleLabel(r *Rule) string {
	if r.Name == "" {
		return "rule"
	}
	return fmt.Sprintf("rule %q", r.Name)
}

// criteria decodes a rule's match.
func (d *decoder) criteria(n *yaml.Node) criteria {
	var c criteria
	var given bool
	d.Mapping(n, "match", map[string]func(*yaml.Node){
		"rules": func(n *yaml.Node) {
			given = true
			c.rules = d.strList(n, "match.rules")
		},
		"priority": func(n *yaml.Node) {
			given = true
			s := d.Str(n, "match.priority")
			if !d.IsStr(n) {
				return
			}
			pc, err := parsePriorityCond(s)
			if err != nil {
				d.At(n, "match.priority: %v", err)
				return
			}
			c.priority = &pc
		},
		"tags": func(n *yaml.Node) {
			given = true
			c.tags = d.strList(n, "match.tags")
		},
		"source": func(n *yaml.Node) {
			given = true
			c.source = d.Str(n, "match.source")
			if d.IsStr(n) && c.source == "" {
				d.At(n, "match.source is empty: leave it out to accept every source")
			}
		},
		"fields": func(n *yaml.Node) {
			given = true
			for _, item := range d.Seq(n, "match.fields") {
				s := d.Str(item, "a match.fields condition")
				if !d.IsStr(item) {
					continue
				}
				fc, err := parseFieldCond(s)
				if err != nil {
					d.At(item, "match.fields: %v", err)
					continue
				}
				c.fields = append(c.fields, fc)
			}
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				d.At(n, "match.fields is empty: leave it out to put no condition on fields")
			}
		},
	})
	if n.Kind == yaml.MappingNode && !given {
		d.At(n, `match has no conditions: a rule must say which alerts it acts on (priority: ">=Debug" for every alert)`)
	}
	return c
}

// strList decodes a non-empty list of non-empty strings.
func (d *decoder) strList(n *yaml.Node, what string) []string {
	items := d.Seq(n, what)
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		d.At(n, "%s is empty: leave it out to put no condition on it", what)
	}
	var out []string
	for _, item := range items {
		s := d.Str(item, what+" item")
		if d.IsStr(item) && s == "" {
			d.At(item, "%s: an empty string matches nothing", what)
		}
		out = append(out, s)
	}
	return out
}

// params decodes a rule's params.
func (d *decoder) params(n *yaml.Node) map[string]any {
	out := map[string]any{}
	if n.Kind != yaml.MappingNode {
		d.At(n, "params must be a mapping of playbook parameter names to values, not %s", d.KindName(n))
		return out
	}
	for k, v := range strictyaml.Pairs(n) {
		name := d.Str(k, "parameter name")
		if !d.IsStr(k) {
			continue
		}
		if !identRE.MatchString(name) {
			d.At(k, "parameter name %q is not an identifier: letters, digits and '_', starting with a letter", name)
			continue
		}
		if _, dup := out[name]; dup {
			d.At(k, "parameter %q given twice", name)
			continue
		}
		if x, ok := d.value(v, "params."+name); ok {
			out[name] = x
		}
	}
	return out
}

// value converts a YAML node to a plain value, checking the ${field}
// references in its strings.
func (d *decoder) value(n *yaml.Node, where string) (any, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str", "!!timestamp":
			if _, err := parseTemplate(n.Value); err != nil {
				d.At(n, "%s: %v", where, err)
				return nil, false
			}
			return n.Value, true
		case "!!null":
			d.At(n, "%s is null: give a value or leave the parameter out", where)
			return nil, false
		}
		x, err := strictyaml.Scalar(n)
		if err != nil {
			d.At(n, "%s: %v", where, err)
			return nil, false
		}
		return x, true
	case yaml.SequenceNode:
		list := []any{}
		ok := true
		for i, item := range n.Content {
			x, good := d.value(item, fmt.Sprintf("%s[%d]", where, i))
			ok = ok && good
			list = append(list, x)
		}
		return list, ok
	case yaml.MappingNode:
		m := map[string]any{}
		ok := true
		for kn, vn := range strictyaml.Pairs(n) {
			k := d.Str(kn, "key")
			if _, dup := m[k]; dup {
				d.At(kn, "%s: key %q given twice", where, k)
				ok = false
				continue
			}
			x, good := d.value(vn, where+"."+k)
			ok = ok && good
			m[k] = x
		}
		return m, ok
	}
	d.At(n, "%s: unsupported YAML node", where)
	return nil, false
}

// duration decodes a non-negative duration such as 10m.
func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s := d.Str(n, what)
	if !d.IsStr(n) {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.At(n, "%s %q is not a duration such as 30s or 10m", what, s)
	case v < 0:
		d.At(n, "%s %q is negative", what, s)
	default:
		return v, true
	}
	return 0, false
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }
