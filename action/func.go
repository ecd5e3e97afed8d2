package action

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Func is an Action made of a function over a typed parameter struct P. The
// parameters are declared once, by P's fields and tags (see ParamsOf), and
// decoded strictly before Do runs.
type Func[P Validator] struct {
	// Name, Summary, Rules and ReadOnly are as in Spec.
	Name     string
	Summary  string
	Rules    []rbacv1.PolicyRule
	ReadOnly bool
	// Do performs the action with decoded, valid parameters.
	Do func(ctx context.Context, env Env, p P) (Result, error)
}

var _ Action = Func[Validator]{}

// Spec describes the action.
func (f Func[P]) Spec() Spec {
	return Spec{Name: f.Name, Summary: f.Summary, Params: ParamsOf[P](), Rules: f.Rules, ReadOnly: f.ReadOnly}
}

// Validate decodes and checks the parameters.
func (f Func[P]) Validate(p Params) error {
	_, err := DecodeValid[P](p)
	return err
}

// Run decodes the parameters and calls Do.
func (f Func[P]) Run(ctx context.Context, env Env, p Params) (Result, error) {
	in, err := DecodeValid[P](p)
	if err != nil {
		return Result{}, err
	}
	return f.Do(ctx, env.Defaults(), in)
}
