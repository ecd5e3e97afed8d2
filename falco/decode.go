package falco

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// decoder turns a routing config's YAML into a Config, strictly: every
// unknown key, wrong type or missing field is a problem at its line and
// column, and one pass reports as many as it can. It follows the playbook
// loader (playbooks/decode.go).
type decoder struct {
	ps *problems
}

var (
	// nameRE is a rule's name, and a playbook's (as in playbooks).
	nameRE     = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	identRE    = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,62}$`)
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
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
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(0, 0, "empty file: want a Routing config")
		} else {
			line, msg := yamlError(err)
			ps.add(line, 0, "%s%s", msg, quoteHint(data, line))
		}
		return c, ps
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		ps.add(next.Line, next.Column, "a second YAML document: put the whole routing config in one")
	} else if !errors.Is(err, io.EOF) {
		line, msg := yamlError(err)
		ps.add(line, 0, "%s", msg)
	}
	d := &decoder{ps: ps}
	if !d.noAliases(&doc) {
		return c, ps
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var apiVersion, kind string
	var rules []*Rule
	windows := map[*Rule]bool{} // rules that set dedup.window
	d.mapping(root, "routing config", map[string]func(*yaml.Node){
		"apiVersion": func(n *yaml.Node) { apiVersion = d.str(n, "apiVersion") },
		"kind":       func(n *yaml.Node) { kind = d.str(n, "kind") },
		"defaults": func(n *yaml.Node) {
			d.mapping(n, "defaults", map[string]func(*yaml.Node){
				"dedupWindow": func(n *yaml.Node) {
					if w, ok := d.duration(n, "defaults.dedupWindow"); ok {
						c.DedupWindow = w
					}
				},
			})
		},
		"rules": func(n *yaml.Node) {
			for _, item := range d.seq(n, "rules") {
				r, setWindow := d.rule(item)
				rules = append(rules, r)
				windows[r] = setWindow
			}
		},
	})
	if root.Kind == yaml.MappingNode {
		switch {
		case apiVersion == "":
			d.at(root, "apiVersion is missing: want %s", APIVersion)
		case apiVersion != APIVersion:
			d.at(valueOf(root, "apiVersion"), "apiVersion %q is not supported: want %s", apiVersion, APIVersion)
		}
		switch {
		case kind == "":
			d.at(root, "kind is missing: want %s", Kind)
		case kind != Kind:
			d.at(valueOf(root, "kind"), "kind %q is not supported: want %s", kind, Kind)
		}
		if valueOf(root, "rules") == nil {
			d.at(root, "rules is missing: give a list of rules (an empty list routes nothing)")
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
			d.ps.add(r.Pos.Line, r.Pos.Col, "rule name %q used twice (first at line %d)", r.Name, first.Pos.Line)
			continue
		}
		seen[r.Name] = r
	}
	c.Rules = rules
	return c, ps
}

// yamlError extracts the line from a YAML syntax error.
func yamlError(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, "invalid YAML: " + m[2]
	}
	return 0, "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
}

// priorityRE spots an unquoted priority condition: YAML reads the > of
// >=Critical as the start of a folded block.
var priorityRE = regexp.MustCompile(`^\s*(-\s+)?priority:\s*>`)

// quoteHint explains the usual cause of a syntax error on a line.
func quoteHint(data []byte, line int) string {
	// YAML counts a lone \r as a line break too, so line may be past the
	// last \n-separated line.
	lines := bytes.Split(data, []byte("\n"))
	lo, hi := max(0, line-2), min(len(lines), line)
	if lo >= hi {
		return ""
	}
	for _, l := range lines[lo:hi] {
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
	d.mapping(n, "rule", map[string]func(*yaml.Node){
		"name": func(n *yaml.Node) {
			r.Name = d.str(n, "rule name")
			if r.Name != "" && !nameRE.MatchString(r.Name) {
				d.at(n, "rule name %q is not a valid name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", r.Name)
			}
		},
		"match": func(n *yaml.Node) {
			sawMatch = true
			r.match = d.criteria(n)
		},
		"playbook": func(n *yaml.Node) {
			sawPlaybook = true
			r.playbookPos = d.pos(n)
			r.Playbook = d.str(n, "playbook")
			switch {
			case !isStr(n):
			case r.Playbook == "":
				d.at(n, "playbook is empty: name the playbook to run")
			case !nameRE.MatchString(r.Playbook):
				d.at(n, "playbook %q is not a playbook name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", r.Playbook)
			}
		},
		"params": func(n *yaml.Node) { r.Params = d.params(n) },
		"dedup": func(n *yaml.Node) {
			d.mapping(n, "dedup", map[string]func(*yaml.Node){
				"key": func(n *yaml.Node) {
					key := d.str(n, "dedup.key")
					if !isStr(n) {
						return
					}
					if key == "" {
						d.at(n, "dedup.key is empty: leave it out for the default, %s", DefaultDedupKey)
						return
					}
					if _, err := parseTemplate(key); err != nil {
						d.at(n, "dedup.key %v", err)
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
		"dryRun": func(n *yaml.Node) { r.DryRun = d.bool(n, "dryRun") },
	})
	if n.Kind != yaml.MappingNode {
		return r, setWindow
	}
	if valueOf(n, "name") == nil {
		d.at(n, "rule without a name")
	}
	if !sawMatch {
		d.at(n, "%s has no match: say which alerts it acts on", ruleLabel(r))
	}
	if !sawPlaybook {
		r.playbookPos = r.Pos
		d.at(n, "%s has no playbook", ruleLabel(r))
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
	d.mapping(n, "match", map[string]func(*yaml.Node){
		"rules": func(n *yaml.Node) {
			given = true
			c.rules = d.strList(n, "match.rules")
		},
		"priority": func(n *yaml.Node) {
			given = true
			s := d.str(n, "match.priority")
			if !isStr(n) {
				return
			}
			pc, err := parsePriorityCond(s)
			if err != nil {
				d.at(n, "match.priority: %v", err)
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
			c.source = d.str(n, "match.source")
			if isStr(n) && c.source == "" {
				d.at(n, "match.source is empty: leave it out to accept every source")
			}
		},
		"fields": func(n *yaml.Node) {
			given = true
			for _, item := range d.seq(n, "match.fields") {
				s := d.str(item, "a match.fields condition")
				if !isStr(item) {
					continue
				}
				fc, err := parseFieldCond(s)
				if err != nil {
					d.at(item, "match.fields: %v", err)
					continue
				}
				c.fields = append(c.fields, fc)
			}
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				d.at(n, "match.fields is empty: leave it out to put no condition on fields")
			}
		},
	})
	if n.Kind == yaml.MappingNode && !given {
		d.at(n, `match has no conditions: a rule must say which alerts it acts on (priority: ">=Debug" for every alert)`)
	}
	return c
}

// strList decodes a non-empty list of non-empty strings.
func (d *decoder) strList(n *yaml.Node, what string) []string {
	items := d.seq(n, what)
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		d.at(n, "%s is empty: leave it out to put no condition on it", what)
	}
	var out []string
	for _, item := range items {
		s := d.str(item, what+" item")
		if isStr(item) && s == "" {
			d.at(item, "%s: an empty string matches nothing", what)
		}
		out = append(out, s)
	}
	return out
}

// params decodes a rule's params.
func (d *decoder) params(n *yaml.Node) map[string]any {
	out := map[string]any{}
	if n.Kind != yaml.MappingNode {
		d.at(n, "params must be a mapping of playbook parameter names to values, not %s", kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := d.str(k, "parameter name")
		if !isStr(k) {
			continue
		}
		if !identRE.MatchString(name) {
			d.at(k, "parameter name %q is not an identifier: letters, digits and '_', starting with a letter", name)
			continue
		}
		if _, dup := out[name]; dup {
			d.at(k, "parameter %q given twice", name)
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
				d.at(n, "%s: %v", where, err)
				return nil, false
			}
			return n.Value, true
		case "!!null":
			d.at(n, "%s is null: give a value or leave the parameter out", where)
			return nil, false
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.at(n, "%s: %v", where, err)
			return nil, false
		}
		switch x := x.(type) {
		case int:
			return int64(x), true
		case bool, float64, int64:
			return x, true
		}
		d.at(n, "%s: unsupported value %q (tag %s)", where, n.Value, n.Tag)
		return nil, false
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
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.str(n.Content[i], "key")
			if _, dup := m[k]; dup {
				d.at(n.Content[i], "%s: key %q given twice", where, k)
				ok = false
				continue
			}
			x, good := d.value(n.Content[i+1], where+"."+k)
			ok = ok && good
			m[k] = x
		}
		return m, ok
	}
	d.at(n, "%s: unsupported YAML node", where)
	return nil, false
}

// duration decodes a non-negative duration such as 10m.
func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s := d.str(n, what)
	if !isStr(n) {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.at(n, "%s %q is not a duration such as 30s or 10m", what, s)
	case v < 0:
		d.at(n, "%s %q is negative", what, s)
	default:
		return v, true
	}
	return 0, false
}

// mapping walks a mapping node, calling the handler of each known key and
// reporting unknown and repeated keys.
func (d *decoder) mapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.at(n, "%s must be a mapping, not %s", what, kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := d.str(k, "key")
		if seen[key] {
			d.at(k, "%s: key %q given twice", what, key)
			continue
		}
		seen[key] = true
		h, ok := fields[key]
		if !ok {
			d.at(k, "%s: unknown field %q (known: %s)", what, key, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			continue
		}
		h(v)
	}
}

// valueOf returns the value node of key in mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (d *decoder) seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.at(n, "%s must be a list, not %s", what, kindName(n))
		return nil
	}
	return n.Content
}

// isStr reports whether n is a string scalar.
func isStr(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!str" }

func (d *decoder) str(n *yaml.Node, what string) string {
	if n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		d.at(n, "%s: YAML reads %s as a tag: quote a value that starts with !", what, n.Tag)
		return ""
	}
	if !isStr(n) {
		d.at(n, "%s must be a string, not %s", what, kindName(n))
		return ""
	}
	return n.Value
}

func (d *decoder) bool(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.at(n, "%s must be true or false, not %s", what, kindName(n))
		return false
	}
	var b bool
	_ = n.Decode(&b)
	return b
}

// noAliases rejects aliases: expanding them is how a small YAML file
// becomes a huge one, and a routing config has no need for them.
func (d *decoder) noAliases(n *yaml.Node) bool {
	ok := true
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			d.at(n, "YAML aliases (*%s) are not allowed in a routing config", n.Value)
			ok = false
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return ok
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.ps.file, Line: n.Line, Col: n.Column} }

func (d *decoder) at(n *yaml.Node, format string, args ...any) {
	if n == nil {
		d.ps.add(0, 0, format, args...)
		return
	}
	d.ps.add(n.Line, n.Column, format, args...)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}
