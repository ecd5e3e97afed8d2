package action

import (
	"context"
	"encoding/json"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Func is an Action made of a function over a typed parameter struct P,
// whose output is an O. The parameters are declared once, by P's fields and
// tags (see ParamsOf), and decoded strictly before Do runs; the output type
// tells a run's reader what a step's output is, whether it comes from this
// process or from a journal (Output), so that the output's own methods
// (Texter, say) serve every reader. An action with no output of its own
// uses any.
type Func[P Validator, O any] struct {
	// Name, Summary, Rules and ReadOnly are as in Spec.
	Name     string
	Summary  string
	Rules    []rbacv1.PolicyRule
	ReadOnly bool
	// Do performs the action with decoded, valid parameters. The Output
	// of its Result is an O, a *O or nil.
	Do func(ctx context.Context, env Env, p P) (Result, error)
}

var _ Action = Func[Validator, any]{}

// Spec describes the action.
func (f Func[P, O]) Spec() Spec {
	return Spec{Name: f.Name, Summary: f.Summary, Params: ParamsOf[P](), Rules: f.Rules, ReadOnly: f.ReadOnly}
}

// Validate decodes and checks the parameters.
func (f Func[P, O]) Validate(p Params) error {
	_, err := DecodeValid[P](p)
	return err
}

// Run decodes the parameters and calls Do.
func (f Func[P, O]) Run(ctx context.Context, env Env, p Params) (Result, error) {
	in, err := DecodeValid[P](p)
	if err != nil {
		return Result{}, err
	}
	return f.Do(ctx, env.Defaults(), in)
}

// Output returns out as an O: out as Do returned it (an O or a *O), or
// as the plain JSON values a journal gives back. nil stays nil.
func (f Func[P, O]) Output(out any) (any, error) {
	switch o := out.(type) {
	case nil:
		return nil, nil
	case O:
		return o, nil
	case *O:
		if o == nil {
			return nil, nil
		}
		return *o, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("decoding the output of %s: %w", f.Name, err)
	}
	var o O
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decoding the output of %s: %w", f.Name, err)
	}
	return o, nil
}
