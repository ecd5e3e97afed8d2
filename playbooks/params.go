package playbooks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParamError says what is wrong with the parameters given to a playbook.
type ParamError struct {
	Playbook string
	Problems []string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("playbook %s: %s", e.Playbook, strings.Join(e.Problems, "; "))
}

// Bind checks the given parameters against the playbook's declarations and
// returns every declared parameter's value: given, default, or the zero
// value of its type, so that expressions can use any of them.
func Bind(pb *Playbook, given map[string]any) (map[string]any, error) {
	out := map[string]any{}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if _, ok := pb.Param(name); !ok {
			problems = append(problems, fmt.Sprintf("unknown parameter %q (it takes: %s)", name, declared(pb)))
		}
	}
	for _, p := range pb.Parameters {
		v, ok := given[p.Name]
		switch {
		case ok:
			pv, err := plain(v)
			if err == nil {
				err = checkType(pv, p.Type)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("parameter %q: %v", p.Name, err))
				continue
			}
			out[p.Name] = pv
		case p.Required:
			problems = append(problems, fmt.Sprintf("parameter %q is required", p.Name))
		case p.Default != nil:
			out[p.Name] = p.Default
		default:
			out[p.Name] = zero(p.Type)
		}
	}
	if len(problems) > 0 {
		return nil, &ParamError{Playbook: pb.Name, Problems: problems}
	}
	return out, nil
}

// ParseParam converts the text of `--set name=value` to the parameter's
// type: []string values are comma-separated.
func ParseParam(pb *Playbook, name, text string) (any, error) {
	p, ok := pb.Param(name)
	if !ok {
		return nil, fmt.Errorf("playbook %s has no parameter %q (it takes: %s)", pb.Name, name, declared(pb))
	}
	switch p.Type {
	case "bool":
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("parameter %q wants true or false, got %q", name, text)
		}
		return b, nil
	case "int":
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parameter %q wants a whole number, got %q", name, text)
		}
		return i, nil
	case "duration":
		if _, err := time.ParseDuration(text); err != nil {
			return nil, fmt.Errorf("parameter %q wants a duration such as 30s or 5m, got %q", name, text)
		}
		return text, nil
	case "[]string":
		if text == "" {
			return []any{}, nil
		}
		var out []any
		for _, s := range strings.Split(text, ",") {
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	}
	return text, nil
}

// ParseSets parses `--set name=value` flags.
func ParseSets(pb *Playbook, sets []string) (map[string]any, error) {
	out := map[string]any{}
	var errs []error
	for _, s := range sets {
		name, text, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("--set %q: want name=value", s))
			continue
		}
		v, err := ParseParam(pb, name, text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[name] = v
	}
	return out, errors.Join(errs...)
}

func zero(typ string) any {
	switch typ {
	case "bool":
		return false
	case "int":
		return int64(0)
	case "duration":
		return "0s"
	case "[]string":
		return []any{}
	}
	return ""
}

func declared(pb *Playbook) string {
	names := make([]string, len(pb.Parameters))
	for i, p := range pb.Parameters {
		names[i] = p.Name
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
