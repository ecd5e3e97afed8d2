package playbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Value is a step parameter as the playbook writes it: a literal, a string
// holding ${{ expressions }}, or a list or map of values. A string that is
// exactly one ${{ expression }} takes the expression's value and type;
// anywhere else in a string, results are spliced in as text.
type Value struct {
	literal any    // a scalar without expressions
	parts   []part // a string with expressions
	list    []*Value
	keys    []string // a map's keys, in order
	fields  map[string]*Value
	kind    valueKind
	pos     Pos
	broken  bool // could not be read; the problem is reported
}

type valueKind int

const (
	scalarValue valueKind = iota
	templateValue
	listValue
	mapValue
)

// part is literal text or an expression of a template string.
type part struct {
	text string
	expr *Expr
}

const (
	openDelim  = "${{"
	closeDelim = "}}"
)

// parseTemplate splits s into text and compiled expressions.
func parseTemplate(s string) ([]part, error) {
	var parts []part
	var errs []error
	for {
		i := strings.Index(s, openDelim)
		if i < 0 {
			break
		}
		j := strings.Index(s[i+len(openDelim):], closeDelim)
		if j < 0 {
			return nil, fmt.Errorf("%q opens an expression that no %q closes", s[i:], closeDelim)
		}
		if i > 0 {
			parts = append(parts, part{text: s[:i]})
		}
		src := strings.TrimSpace(s[i+len(openDelim) : i+len(openDelim)+j])
		e, err := compileExpr(src, false)
		if err != nil {
			errs = append(errs, err)
		}
		parts = append(parts, part{expr: e})
		s = s[i+len(openDelim)+j+len(closeDelim):]
	}
	if s != "" {
		parts = append(parts, part{text: s})
	}
	return parts, errors.Join(errs...)
}

// exprs returns every expression in v.
func (v *Value) exprs() []*Expr {
	var out []*Expr
	switch v.kind {
	case templateValue:
		for _, p := range v.parts {
			if p.expr != nil {
				out = append(out, p.expr)
			}
		}
	case listValue:
		for _, item := range v.list {
			out = append(out, item.exprs()...)
		}
	case mapValue:
		for _, k := range v.keys {
			out = append(out, v.fields[k].exprs()...)
		}
	}
	return out
}

// static reports whether v holds no expression, so its value is known at
// load time.
func (v *Value) static() bool { return !v.broken && len(v.exprs()) == 0 }

// eval computes the value.
func (v *Value) eval(ctx context.Context, vars map[string]any) (any, error) {
	switch v.kind {
	case scalarValue:
		return v.literal, nil
	case templateValue:
		if len(v.parts) == 1 && v.parts[0].expr != nil {
			return v.parts[0].expr.eval(ctx, vars)
		}
		var b strings.Builder
		for _, p := range v.parts {
			if p.expr == nil {
				b.WriteString(p.text)
				continue
			}
			out, err := p.expr.eval(ctx, vars)
			if err != nil {
				return nil, err
			}
			if s, ok := out.(string); ok {
				b.WriteString(s)
				continue
			}
			j, err := json.Marshal(out)
			if err != nil {
				return nil, err
			}
			b.Write(j)
		}
		return b.String(), nil
	case listValue:
		out := make([]any, len(v.list))
		for i, item := range v.list {
			x, err := item.eval(ctx, vars)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	default:
		out := make(map[string]any, len(v.keys))
		for _, k := range v.keys {
			x, err := v.fields[k].eval(ctx, vars)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
}

// String is the value as written, for plans and messages.
func (v *Value) String() string {
	switch v.kind {
	case scalarValue:
		b, _ := json.Marshal(v.literal)
		return string(b)
	case templateValue:
		var b strings.Builder
		for _, p := range v.parts {
			if p.expr == nil {
				b.WriteString(p.text)
			} else {
				b.WriteString(openDelim + " " + p.expr.Source + " " + closeDelim)
			}
		}
		return b.String()
	case listValue:
		items := make([]string, len(v.list))
		for i, item := range v.list {
			items[i] = item.String()
		}
		return "[" + strings.Join(items, ", ") + "]"
	default:
		items := make([]string, len(v.keys))
		for i, k := range v.keys {
			items[i] = k + ": " + v.fields[k].String()
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
}

// staticValue is the value of a Value without expressions.
func (v *Value) staticValue() any {
	switch v.kind {
	case listValue:
		out := make([]any, len(v.list))
		for i, item := range v.list {
			out[i] = item.staticValue()
		}
		return out
	case mapValue:
		out := make(map[string]any, len(v.keys))
		for _, k := range v.keys {
			out[k] = v.fields[k].staticValue()
		}
		return out
	}
	return v.literal
}
