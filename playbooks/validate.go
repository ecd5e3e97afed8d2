package playbooks

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/action"
)

// Load reads one playbook from data, strictly, and checks it against the
// actions in reg. file names the source in problems. Every problem found is
// reported at once, as a *LoadError.
func Load(file string, data []byte, reg action.Registry) (*Playbook, error) {
	pb, ps, ok := decode(file, data)
	if ok {
		check(pb, reg, ps)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return pb, nil
}

// check finds what decoding cannot: duplicates, unknown actions and
// parameters, wrong types, and references to undefined parameters or to
// steps that have not run yet.
func check(pb *Playbook, reg action.Registry, ps *problems) {
	params := map[string]Parameter{}
	for _, p := range pb.Parameters {
		if _, dup := params[p.Name]; dup {
			ps.add(p.pos.Line, p.pos.Col, "parameter %q declared twice", p.Name)
		}
		params[p.Name] = p
	}
	steps := map[string]int{}
	for i, s := range pb.Steps {
		if _, dup := steps[s.Name]; dup {
			ps.add(s.pos.Line, s.pos.Col, "step name %q used twice", s.Name)
			continue
		}
		steps[s.Name] = i
	}
	for i, s := range pb.Steps {
		checkRefs := func(pos Pos, exprs []*Expr) {
			for _, e := range exprs {
				for _, r := range e.refs {
					if msg := badRef(r, params, steps, i, s.Name); msg != "" {
						ps.add(pos.Line, pos.Col, "step %q: %s, in %q", s.Name, msg, e.Source)
					}
				}
			}
		}
		if s.When != nil {
			checkRefs(s.whenPos, []*Expr{s.When})
		}
		for _, key := range sortedKeys(s.With) {
			checkRefs(s.With[key].pos, s.With[key].exprs())
		}
		a, ok := reg.Get(s.Action)
		if !ok {
			ps.add(s.actionPos.Line, s.actionPos.Col, "step %q: unknown action %q (known: %s)", s.Name, s.Action, strings.Join(reg.Names(), ", "))
			continue
		}
		if !checkWith(s, a.Spec(), params, ps) {
			continue // the action's own validation would repeat the same problems
		}
		if static := staticParams(s); static != nil {
			if err := a.Validate(static); err != nil {
				ps.add(s.pos.Line, s.pos.Col, "step %q: %s", s.Name, oneLine(err))
			}
		}
	}
}

// badRef says what is wrong with a reference, or "".
func badRef(r reference, params map[string]Parameter, steps map[string]int, i int, self string) string {
	switch r.variable {
	case varParams:
		if _, ok := params[r.name]; !ok {
			return fmt.Sprintf("no parameter named %q", r.name)
		}
	case varSteps:
		j, ok := steps[r.name]
		switch {
		case !ok:
			return fmt.Sprintf("no step named %q", r.name)
		case r.name == self:
			return "a step cannot refer to its own result"
		case j > i:
			return fmt.Sprintf("step %q runs later, so its result is not known yet", r.name)
		}
	}
	return ""
}

// checkWith checks a step's parameters against what its action takes, and
// reports whether they passed.
func checkWith(s Step, spec action.Spec, params map[string]Parameter, ps *problems) bool {
	before := ps.Len()
	takes := map[string]action.Param{}
	for _, p := range spec.Params {
		takes[p.Name] = p
		if _, given := s.With[p.Name]; p.Required && !given {
			ps.add(s.pos.Line, s.pos.Col, "step %q: action %s needs parameter %q", s.Name, spec.Name, p.Name)
		}
	}
	for _, key := range sortedKeys(s.With) {
		v := s.With[key]
		p, ok := takes[key]
		if !ok {
			ps.add(v.pos.Line, v.pos.Col, "step %q: action %s takes no parameter %q (it takes: %s)", s.Name, spec.Name, key, paramNames(spec.Params))
			continue
		}
		if v.broken {
			continue
		}
		if v.static() {
			if err := checkType(v.staticValue(), p.Type); err != nil {
				ps.add(v.pos.Line, v.pos.Col, "step %q: parameter %q: %v", s.Name, key, err)
			}
			continue
		}
		// ${{ params.X }} alone: the parameter's declared type must fit.
		if v.kind == templateValue && len(v.parts) == 1 && len(v.parts[0].expr.refs) == 1 {
			r := v.parts[0].expr.refs[0]
			if pp, ok := params[r.name]; ok && r.variable == varParams && v.parts[0].expr.Source == varParams+"."+r.name && pp.Type != p.Type && !fits(pp.Type, p.Type) {
				ps.add(v.pos.Line, v.pos.Col, "step %q: parameter %q wants %s, but playbook parameter %q has type %s", s.Name, key, p.Type, r.name, pp.Type)
			}
		}
	}
	return ps.Len() == before
}

// fits reports whether a playbook parameter of type from may feed an
// action parameter of type to: a string may feed a duration or a checked
// string type, and a list of strings a list of names, whose values are
// then checked when the step runs.
func fits(from, to string) bool {
	if from == "[]string" {
		return to == "[]"+action.TypePodName || to == "[]"+action.TypeNodeName
	}
	return from == "string" && (to == "duration" || action.StringType(to))
}

// staticParams returns the step's parameters when none holds an
// expression, so that the action can validate them at load time.
func staticParams(s Step) action.Params {
	out := action.Params{}
	for k, v := range s.With {
		if !v.static() {
			return nil
		}
		out[k] = v.staticValue()
	}
	return out
}

// checkType checks a plain value against an action parameter type.
func checkType(v any, typ string) error {
	bad := func() error { return fmt.Errorf("want %s, got %s", typ, describe(v)) }
	switch typ {
	case "string":
		if _, ok := v.(string); !ok {
			return bad()
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case "int":
		switch v.(type) {
		case int, int64:
		default:
			return bad()
		}
	case "duration":
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("want a duration such as 30s or 5m, got %q", s)
		}
	case action.TypeSelector, action.TypeNamespace, action.TypePodName, action.TypeNodeName:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		return action.CheckString(typ, s)
	case "[]string", "[]" + action.TypePodName, "[]" + action.TypeNodeName:
		return checkList(v, typ)
	case "map[string]string":
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for k, item := range m {
			if _, ok := item.(string); !ok {
				return fmt.Errorf("want a map of strings, got %q: %s", k, describe(item))
			}
		}
	}
	return nil
}

// checkList checks a plain value against a list type: []string, or a
// list of names, each checked.
func checkList(v any, typ string) error {
	list, ok := v.([]any)
	if !ok {
		if _, ok := v.([]string); ok && typ == "[]string" {
			return nil
		}
		return fmt.Errorf("want %s, got %s", typ, describe(v))
	}
	for _, item := range list {
		if _, ok := item.(string); !ok {
			return fmt.Errorf("want a list of strings, got an item that is %s", describe(item))
		}
		if err := action.CheckString(strings.TrimPrefix(typ, "[]"), item.(string)); err != nil {
			return err
		}
	}
	return nil
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the bool %v", v)
	case int, int64:
		return fmt.Sprintf("the number %v", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

func paramNames(ps []action.Param) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// oneLine joins a multi-line error into one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
