package playbooks

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/strictyaml"
)

// maxFileSize bounds a playbook file; real ones are a few kilobytes.
const maxFileSize = 1 << 20

// decoder turns a YAML document into a Playbook, strictly: every unknown
// key, wrong type or missing field is a problem at its line and column.
type decoder struct {
	*strictyaml.Decoder
	file string
}

// yamlFormat is how playbooks read as YAML, where kir's formats differ.
// An unquoted date is a string; the later refinements of the routing
// config's messages (TagHint, Floats, TrimPrefix) are off, so that a
// playbook's problems read as they always have.
var yamlFormat = strictyaml.Format{
	Want:        "a Playbook",
	OneDocument: "put one playbook in each file",
	AliasesIn:   "playbooks",
	Timestamps:  true,
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
	d := &decoder{Decoder: strictyaml.NewDecoder(&ps.Problems, yamlFormat), file: file}
	root, ok := d.Document(data)
	if !ok {
		return pb, ps, false
	}
	var apiVersion, kind string
	var sawMetadata bool
	d.mapping(root, "playbook", map[string]func(*yaml.Node){
		"apiVersion":  func(n *yaml.Node) { apiVersion = d.Str(n, "apiVersion") },
		"kind":        func(n *yaml.Node) { kind = d.Str(n, "kind") },
		"description": func(n *yaml.Node) { pb.Description = d.Str(n, "description") },
		"metadata": func(n *yaml.Node) {
			sawMetadata = true
			var sawName bool
			d.mapping(n, "metadata", map[string]func(*yaml.Node){
				"name": func(n *yaml.Node) {
					sawName = true
					pb.Name = d.Str(n, "metadata.name")
					if pb.Name != "" && !nameRE.MatchString(pb.Name) {
						d.At(n, "metadata.name %q is not a valid name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", pb.Name)
					}
				},
				"category": func(n *yaml.Node) {
					pb.Category = d.Str(n, "metadata.category")
					if !contains(categories, pb.Category) {
						d.At(n, "metadata.category %q: want one of %s", pb.Category, strings.Join(categories, ", "))
					}
				},
				"rollback": func(n *yaml.Node) {
					pb.Rollback = d.Str(n, "metadata.rollback")
					if !nameRE.MatchString(pb.Rollback) {
						d.At(n, "metadata.rollback %q is not a playbook name: lowercase letters, digits and '-', starting with a letter, at most 63 characters", pb.Rollback)
					}
				},
			})
			if !sawName {
				d.At(n, "metadata.name is missing")
			}
		},
		"parameters": func(n *yaml.Node) {
			for _, item := range d.Seq(n, "parameters") {
				pb.Parameters = append(pb.Parameters, d.parameter(item))
			}
		},
		"steps": func(n *yaml.Node) {
			for _, item := range d.Seq(n, "steps") {
				pb.Steps = append(pb.Steps, d.step(item))
			}
		},
	})
	if root.Kind == yaml.MappingNode {
		d.Expect(root, "apiVersion", apiVersion, APIVersion)
		d.Expect(root, "kind", kind, Kind)
		if !sawMetadata {
			d.At(root, "metadata is missing: a playbook needs metadata.name")
		}
		if len(pb.Steps) == 0 && strictyaml.ValueOf(root, "steps") == nil {
			d.At(root, "steps is missing: a playbook needs at least one step")
		}
	}
	return pb, ps, true
}

var (
	nameRE      = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	identRE     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,62}$`)
	paramTypes  = []string{"string", "bool", "int", "duration", "[]string", action.TypeSelector, action.TypeNamespace, action.TypePodName, action.TypeNodeName}
	onErrorVals = []string{OnErrorAbort, OnErrorContinue}
)

func (d *decoder) parameter(n *yaml.Node) Parameter {
	p := Parameter{pos: d.pos(n)}
	var def *yaml.Node
	d.mapping(n, "parameter", map[string]func(*yaml.Node){
		"name":        func(n *yaml.Node) { p.Name = d.Str(n, "parameter name") },
		"type":        func(n *yaml.Node) { p.Type = d.Str(n, "parameter type") },
		"required":    func(n *yaml.Node) { p.Required = d.Bool(n, "required") },
		"description": func(n *yaml.Node) { p.Description = d.Str(n, "description") },
		"default":     func(n *yaml.Node) { def = n },
	})
	switch {
	case p.Name == "":
		d.At(n, "parameter without a name")
	case !identRE.MatchString(p.Name):
		d.At(strictyaml.ValueOf(n, "name"), "parameter name %q is not an identifier: letters, digits and '_', starting with a letter", p.Name)
	}
	switch {
	case p.Type == "":
		d.At(n, "parameter %q has no type: want one of %q", p.Name, paramTypes)
	case !contains(paramTypes, p.Type):
		d.At(strictyaml.ValueOf(n, "type"), "parameter %q has unknown type %q: want one of %q", p.Name, p.Type, paramTypes)
	}
	if def != nil {
		v := d.value(def)
		if v != nil && !v.static() {
			d.At(def, "the default of parameter %q cannot hold an expression", p.Name)
		} else if v != nil {
			p.Default = v.staticValue()
			if contains(paramTypes, p.Type) {
				if err := checkType(p.Default, p.Type); err != nil {
					d.At(def, "default of parameter %q: %v", p.Name, err)
				}
			}
		}
		if p.Required {
			d.At(def, "parameter %q is required and has a default: a required parameter must be given, so drop one", p.Name)
		}
	}
	return p
}

func (d *decoder) step(n *yaml.Node) Step {
	s := Step{pos: d.pos(n), OnError: OnErrorAbort}
	d.mapping(n, "step", map[string]func(*yaml.Node){
		"name":   func(n *yaml.Node) { s.Name = d.Str(n, "step name") },
		"action": func(n *yaml.Node) { s.Action, s.actionPos = d.Str(n, "action"), d.pos(n) },
		"with": func(n *yaml.Node) {
			s.With = map[string]*Value{}
			if n.Kind != yaml.MappingNode {
				d.At(n, "with must be a mapping of parameter names to values, not %s", d.KindName(n))
				return
			}
			for k, val := range strictyaml.Pairs(n) {
				key := d.Str(k, "parameter name")
				if _, dup := s.With[key]; dup {
					d.At(k, "parameter %q given twice", key)
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
			s.whenPos = d.pos(n)
			src := d.Str(n, "when")
			if src == "" {
				return
			}
			if inner, ok := wholeTemplate(src); ok {
				src = inner
			}
			e, err := compileExpr(src, true)
			if err != nil {
				d.At(n, "when: %v", err)
				return
			}
			s.When = e
		},
		"onError": func(n *yaml.Node) {
			s.OnError = d.Str(n, "onError")
			if !contains(onErrorVals, s.OnError) {
				d.At(n, "onError %q: want abort or continue", s.OnError)
			}
		},
		"approval": func(n *yaml.Node) { s.Approval = d.approval(n) },
		"timeout": func(n *yaml.Node) {
			t := d.Str(n, "timeout")
			v, err := time.ParseDuration(t)
			switch {
			case t == "":
			case err != nil:
				d.At(n, "timeout %q is not a duration such as 30s or 5m", t)
			case v <= 0:
				d.At(n, "timeout %q must be positive", t)
			default:
				s.Timeout = v
			}
		},
	})
	switch {
	case s.Name == "":
		d.At(n, "step without a name")
	case !identRE.MatchString(s.Name):
		d.At(strictyaml.ValueOf(n, "name"), "step name %q is not an identifier (expressions refer to steps.NAME): letters, digits and '_', starting with a letter", s.Name)
	}
	if s.Action == "" {
		d.At(n, "step %q has no action", s.Name)
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
					d.At(n, "%v", err)
					return nil
				}
				v.kind, v.parts = templateValue, parts
				return v
			}
			v.literal = n.Value
		case "!!null":
			v.literal = nil
		default:
			x, err := strictyaml.Scalar(n)
			if err != nil {
				d.At(n, "%v", err)
				return nil
			}
			v.literal = x
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
		for kn, vn := range strictyaml.Pairs(n) {
			k := d.Str(kn, "key")
			if _, dup := v.fields[k]; dup {
				d.At(kn, "key %q given twice", k)
				return nil
			}
			x := d.value(vn)
			if x == nil {
				return nil
			}
			v.keys = append(v.keys, k)
			v.fields[k] = x
		}
		return v
	}
	d.At(n, "unsupported YAML node")
	return nil
}

// mapping is the decoder's Mapping for a section of the documented
// Format; it panics when the two disagree on the section's fields.
func (d *decoder) mapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node)) {
	checkHandlers(section(what), fields)
	d.Mapping(n, what, fields)
}

// approval reads a step's approval: "required", the one word there is to
// write; anything else, true included, is one problem.
func (d *decoder) approval(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || !d.IsStr(n) || n.Value != ApprovalRequired {
		d.At(n, "approval %s: want %q, or no approval key for a step that needs none", d.shown(n), ApprovalRequired)
		return ""
	}
	return ApprovalRequired
}

// shown is a scalar as a problem quotes it, or the kind of a node that is
// not one.
func (d *decoder) shown(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return d.KindName(n)
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func contains(list []string, s string) bool { return slices.Contains(list, s) }
