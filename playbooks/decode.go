package playbooks

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

// maxFileSize bounds a playbook file; real ones are a few kilobytes.
const maxFileSize = 1 << 20

// decoder turns a YAML document into a Playbook, strictly: every unknown
// key, wrong type or missing field is a problem at its line and column.
type decoder struct {
	ps *problems
}

// decode parses data. It returns the playbook as far as it could be read,
// and the problems found; structure problems don't stop it, so that one
// pass reports as much as possible.
//
// ok is false when the file could not be read as YAML at all, so that
// checking its content would only add noise.
func decode(file string, data []byte) (pb *Playbook, ps *problems, ok bool) {
	ps = &problems{file: file}
	pb = &Playbook{Source: file, Data: data}
	if len(data) > maxFileSize {
		ps.add(0, 0, "file is %d bytes; a playbook is at most %d", len(data), maxFileSize)
		return pb, ps, false
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(0, 0, "empty file: want a Playbook")
		} else {
			line, msg := yamlError(err)
			ps.add(line, 0, "%s", msg)
		}
		return pb, ps, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		ps.add(next.Line, next.Column, "a second YAML document: put one playbook in each file")
	} else if !errors.Is(err, io.EOF) {
		line, msg := yamlError(err)
		ps.add(line, 0, "%s", msg)
	}
	d := &decoder{ps: ps}
	if !d.noAliases(&doc) {
		return pb, ps, false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var apiVersion, kind string
	var sawMetadata bool
	d.mapping(root, "playbook", map[string]func(*yaml.Node){
		"apiVersion":  func(n *yaml.Node) { apiVersion = d.str(n, "apiVersion") },
		"kind":        func(n *yaml.Node) { kind = d.str(n, "kind") },
		"description": func(n *yaml.Node) { pb.Description = d.str(n, "description") },
		"metadata": func(n *yaml.Node) {
			sawMetadata = true
			var sawName bool
			d.mapping(n, "metadata", map[string]func(*yaml.Node){
				"name": func(n *yaml.Node) {
					sawName = true
					pb.Name = d.str(n, "metadata.name")
					if pb.Name != "" && !nameRE.MatchString(pb.Name) {
						d.at(n, "metadata.name %q is not a valid name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", pb.Name)
					}
				},
			})
			if !sawName {
				d.at(n, "metadata.name is missing")
			}
		},
		"parameters": func(n *yaml.Node) {
			for _, item := range d.seq(n, "parameters") {
				pb.Parameters = append(pb.Parameters, d.parameter(item))
			}
		},
		"steps": func(n *yaml.Node) {
			for _, item := range d.seq(n, "steps") {
				pb.Steps = append(pb.Steps, d.step(item))
			}
		},
	})
	if root.Kind == yaml.MappingNode {
		switch {
		case apiVersion == "":
			d.at(root, "apiVersion is missing: want %s", APIVersion)
		case apiVersion != APIVersion:
			d.at(d.valueOf(root, "apiVersion"), "apiVersion %q is not supported: want %s", apiVersion, APIVersion)
		}
		switch {
		case kind == "":
			d.at(root, "kind is missing: want %s", Kind)
		case kind != Kind:
			d.at(d.valueOf(root, "kind"), "kind %q is not supported: want %s", kind, Kind)
		}
		if !sawMetadata {
			d.at(root, "metadata is missing: a playbook needs metadata.name")
		}
		if len(pb.Steps) == 0 && d.valueOf(root, "steps") == nil {
			d.at(root, "steps is missing: a playbook needs at least one step")
		}
	}
	return pb, ps, true
}

var (
	nameRE      = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	identRE     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,62}$`)
	yamlLineRE  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	paramTypes  = []string{"string", "bool", "int", "duration", "[]string"}
	onErrorVals = []string{OnErrorAbort, OnErrorContinue}
)

// yamlError extracts the line from a YAML syntax error.
func yamlError(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, "invalid YAML: " + m[2]
	}
	return 0, "invalid YAML: " + msg
}

func (d *decoder) parameter(n *yaml.Node) Parameter {
	p := Parameter{pos: d.pos(n)}
	var def *yaml.Node
	d.mapping(n, "parameter", map[string]func(*yaml.Node){
		"name":        func(n *yaml.Node) { p.Name = d.str(n, "parameter name") },
		"type":        func(n *yaml.Node) { p.Type = d.str(n, "parameter type") },
		"required":    func(n *yaml.Node) { p.Required = d.bool(n, "required") },
		"description": func(n *yaml.Node) { p.Description = d.str(n, "description") },
		"default":     func(n *yaml.Node) { def = n },
	})
	switch {
	case p.Name == "":
		d.at(n, "parameter without a name")
	case !identRE.MatchString(p.Name):
		d.at(d.valueOf(n, "name"), "parameter name %q is not an identifier: letters, digits and '_', starting with a letter", p.Name)
	}
	switch {
	case p.Type == "":
		d.at(n, "parameter %q has no type: want one of %v", p.Name, paramTypes)
	case !contains(paramTypes, p.Type):
		d.at(d.valueOf(n, "type"), "parameter %q has unknown type %q: want one of %v", p.Name, p.Type, paramTypes)
	}
	if def != nil {
		v := d.value(def)
		if v != nil && !v.static() {
			d.at(def, "the default of parameter %q cannot hold an expression", p.Name)
		} else if v != nil {
			p.Default = v.staticValue()
			if contains(paramTypes, p.Type) {
				if err := checkType(p.Default, p.Type); err != nil {
					d.at(def, "default of parameter %q: %v", p.Name, err)
				}
			}
		}
		if p.Required {
			d.at(def, "parameter %q is required and has a default: a required parameter must be given, so drop one", p.Name)
		}
	}
	return p
}

func (d *decoder) step(n *yaml.Node) Step {
	s := Step{pos: d.pos(n), OnError: OnErrorAbort}
	d.mapping(n, "step", map[string]func(*yaml.Node){
		"name":   func(n *yaml.Node) { s.Name = d.str(n, "step name") },
		"action": func(n *yaml.Node) { s.Action = d.str(n, "action") },
		"with": func(n *yaml.Node) {
			s.With = map[string]*Value{}
			if n.Kind != yaml.MappingNode {
				d.at(n, "with must be a mapping of parameter names to values, not %s", kindName(n))
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i], n.Content[i+1]
				key := d.str(k, "parameter name")
				if _, dup := s.With[key]; dup {
					d.at(k, "parameter %q given twice", key)
					continue
				}
				v := d.value(val)
				if v == nil {
					v = &Value{broken: true} // reported; still given, as far as checks go
				}
				v.pos = d.pos(k)
				s.With[key] = v
			}
		},
		"when": func(n *yaml.Node) {
			src := d.str(n, "when")
			if src == "" {
				return
			}
			if inner, ok := wholeTemplate(src); ok {
				src = inner
			}
			e, err := compileExpr(src, true)
			if err != nil {
				d.at(n, "when: %v", err)
				return
			}
			s.When = e
		},
		"onError": func(n *yaml.Node) {
			s.OnError = d.str(n, "onError")
			if !contains(onErrorVals, s.OnError) {
				d.at(n, "onError %q: want abort or continue", s.OnError)
			}
		},
		"timeout": func(n *yaml.Node) {
			t := d.str(n, "timeout")
			v, err := time.ParseDuration(t)
			switch {
			case t == "":
			case err != nil:
				d.at(n, "timeout %q is not a duration such as 30s or 5m", t)
			case v <= 0:
				d.at(n, "timeout %q must be positive", t)
			default:
				s.Timeout = v
			}
		},
	})
	switch {
	case s.Name == "":
		d.at(n, "step without a name")
	case !identRE.MatchString(s.Name):
		d.at(d.valueOf(n, "name"), "step name %q is not an identifier (expressions refer to steps.NAME): letters, digits and '_', starting with a letter", s.Name)
	}
	if s.Action == "" {
		d.at(n, "step %q has no action", s.Name)
	}
	return s
}

// wholeTemplate reports whether s is exactly one ${{ expression }}.
func wholeTemplate(s string) (string, bool) {
	s = strings.TrimSpace(s)
	inner, ok := strings.CutPrefix(s, openDelim)
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, closeDelim)
	if !ok || strings.Contains(inner, openDelim) || strings.Contains(inner, closeDelim) {
		return "", false
	}
	return strings.TrimSpace(inner), true
}

// value converts a YAML node to a Value; nil after a problem.
func (d *decoder) value(n *yaml.Node) *Value {
	v := &Value{pos: d.pos(n)}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str", "!!timestamp":
			if bytes.Contains([]byte(n.Value), []byte(openDelim)) {
				parts, err := parseTemplate(n.Value)
				if err != nil {
					d.at(n, "%v", err)
					return nil
				}
				v.kind, v.parts = templateValue, parts
				return v
			}
			v.literal = n.Value
		case "!!null":
			v.literal = nil
		default:
			var x any
			if err := n.Decode(&x); err != nil {
				d.at(n, "%v", err)
				return nil
			}
			switch x := x.(type) {
			case int:
				v.literal = int64(x)
			case bool, float64, int64:
				v.literal = x
			default:
				d.at(n, "unsupported value %q (tag %s)", n.Value, n.Tag)
				return nil
			}
		}
		return v
	case yaml.SequenceNode:
		v.kind = listValue
		v.list = []*Value{}
		for _, item := range n.Content {
			x := d.value(item)
			if x == nil {
				return nil
			}
			v.list = append(v.list, x)
		}
		return v
	case yaml.MappingNode:
		v.kind, v.fields = mapValue, map[string]*Value{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.str(n.Content[i], "key")
			if _, dup := v.fields[k]; dup {
				d.at(n.Content[i], "key %q given twice", k)
				return nil
			}
			x := d.value(n.Content[i+1])
			if x == nil {
				return nil
			}
			v.keys = append(v.keys, k)
			v.fields[k] = x
		}
		return v
	}
	d.at(n, "unsupported YAML node")
	return nil
}

// mapping walks a mapping node of the named Format section, calling the
// handler of each known key and reporting unknown and repeated keys.
func (d *decoder) mapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node)) {
	checkHandlers(section(what), fields)
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
			d.at(k, "%s: unknown field %q (known: %s)", what, key, joinKeys(fields))
			continue
		}
		h(v)
	}
}

// valueOf returns the value node of key in mapping n, or nil.
func (d *decoder) valueOf(n *yaml.Node, key string) *yaml.Node {
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

func (d *decoder) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!timestamp") {
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

// noAliases rejects anchors' aliases: expanding them is how a small YAML
// file becomes a huge one, and playbooks have no need for them.
func (d *decoder) noAliases(n *yaml.Node) bool {
	ok := true
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			d.at(n, "YAML aliases (*%s) are not allowed in playbooks", n.Value)
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
		case "!!int":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func joinKeys[V any](m map[string]V) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
