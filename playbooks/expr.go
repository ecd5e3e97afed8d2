package playbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
)

// The variables an expression can refer to.
const (
	varParams = "params" // the playbook's parameters
	varSteps  = "steps"  // earlier steps: status, changed, output, error
	varRun    = "run"    // the run: id, incident, actor, dryRun
	varAlert  = "alert"  // the Falco alert that triggered the run, if any
)

// Limits that keep a hostile or careless expression from hurting kir.
const (
	maxExprLen  = 4096
	maxExprCost = 1_000_000
)

// celEnv is built once: it is immutable and safe for concurrent use.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varParams, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varSteps, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varRun, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varAlert, cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(maxExprLen),
		cel.ParserRecursionLimit(64),
	)
})

// Expr is a compiled CEL expression.
type Expr struct {
	// Source is the expression as written.
	Source string
	prg    cel.Program
	refs   []reference
}

// reference is a use of params.NAME or steps.NAME in an expression.
type reference struct {
	variable, name string
}

// compileExpr parses and type-checks src. wantBool requires a condition.
func compileExpr(src string, wantBool bool) (*Expr, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, celIssues(src, iss)
	}
	if wantBool {
		if t := checked.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
			return nil, fmt.Errorf("condition %q gives %s, not bool", src, t)
		}
	}
	prg, err := env.Program(checked, cel.CostLimit(maxExprCost), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	return &Expr{Source: src, prg: prg, refs: references(checked.NativeRep())}, nil
}

func celIssues(src string, iss *cel.Issues) error {
	var msgs []string
	for _, e := range iss.Errors() {
		msg := strings.TrimSuffix(e.Message, " (in container '')")
		msgs = append(msgs, fmt.Sprintf("column %d: %s", e.Location.Column()+1, msg))
	}
	return fmt.Errorf("expression %q: %s", src, strings.Join(msgs, "; "))
}

// references finds params.X, params["X"], steps.X and steps["X"], so that
// the loader can reject references to undefined parameters and to steps
// that have not run yet.
func references(a *ast.AST) []reference {
	var out []reference
	ast.PreOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		var operand ast.Expr
		var name string
		switch e.Kind() {
		case ast.SelectKind:
			operand, name = e.AsSelect().Operand(), e.AsSelect().FieldName()
		case ast.CallKind:
			call := e.AsCall()
			if (call.FunctionName() != operators.Index && call.FunctionName() != operators.OptIndex) || len(call.Args()) != 2 {
				return
			}
			key := call.Args()[1]
			if key.Kind() != ast.LiteralKind {
				return
			}
			s, ok := key.AsLiteral().Value().(string)
			if !ok {
				return
			}
			operand, name = call.Args()[0], s
		default:
			return
		}
		if operand.Kind() != ast.IdentKind {
			return
		}
		if v := operand.AsIdent(); v == varParams || v == varSteps {
			out = append(out, reference{variable: v, name: name})
		}
	}))
	return out
}

// eval evaluates the expression over vars and returns a plain Go value:
// string, bool, int64, float64, nil, []any or map[string]any.
func (e *Expr) eval(ctx context.Context, vars map[string]any) (any, error) {
	out, _, err := e.prg.ContextEval(ctx, vars)
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", e.Source, err)
	}
	v, err := native(out)
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", e.Source, err)
	}
	return v, nil
}

// native converts a CEL value to a plain Go value.
func native(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.String:
		return string(v), nil
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return int64(v), nil
	case types.Double:
		return float64(v), nil
	case types.Null:
		return nil, nil
	case types.Duration:
		return v.Duration.String(), nil
	case types.Timestamp:
		return v.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"), nil
	case traits.Lister:
		var out []any
		for it := v.Iterator(); it.HasNext() == types.True; {
			item, err := native(it.Next())
			if err != nil {
				return nil, err
			}
			out = append(out, item)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case traits.Mapper:
		out := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is a %s, not a string", k, k.Type())
			}
			item, err := native(v.Get(k))
			if err != nil {
				return nil, err
			}
			out[string(ks)] = item
		}
		return out, nil
	}
	if v.Type() == types.ErrType {
		return nil, fmt.Errorf("%v", v)
	}
	return nil, fmt.Errorf("unsupported value of type %s", v.Type())
}

// plain turns any JSON-serialisable Go value (an action's output, say) into
// the plain values expressions see: maps, slices, strings, bools, int64 for
// whole numbers and float64 otherwise. A fresh run and a resumed one, which
// reads outputs back from the journal, must see the same values.
func plain(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return plainJSON(b)
}

func plainJSON(b []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return numbers(out), nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbers(v[k])
		}
	}
	return v
}
