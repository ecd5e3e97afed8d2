package cli

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/playbooks"
)

// param is one playbook parameter a command sets: from a flag, only when
// the user set that flag (so that the playbook's default applies
// otherwise, and a user's playbook overriding a built-in one need declare
// only the parameters its users set), or from an argument, always.
//
// A command lists its params in a table (containPodOptions.params, …):
// the one place where its flags meet the playbook's parameters.
type param struct {
	// flag is the flag that sets the parameter; "" for an argument.
	flag string
	// name is the playbook's parameter.
	name string
	// value is the parameter's value, as the flag's field holds it.
	value any
}

// arg is the param of a command's argument: always given.
func arg(name string, value any) param { return param{name: name, value: value} }

// bind returns the parameters params give the playbook e: those of the
// flags the user set, and the arguments. A parameter the playbook does not
// declare is a usage error naming the flag: the user's playbook (from
// --playbook or --playbooks-dir) may not take everything the built-in one
// does.
func bind(c *cli.Context, e *playbooks.Entry, params []param) (map[string]any, error) {
	given := map[string]any{}
	var errs []error
	for _, p := range params {
		if p.flag != "" && !c.IsSet(p.flag) {
			continue
		}
		if !e.Takes(p.name) {
			errs = append(errs, undeclared(e, p))
			continue
		}
		given[p.name] = p.value
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}
	return given, nil
}

func undeclared(e *playbooks.Entry, p param) error {
	by := "the command's argument"
	if p.flag != "" {
		by = "--" + p.flag
	}
	return fmt.Errorf("playbook %s (%s) declares no parameter %q, which %s sets", e.Name, e.Source, p.name, by)
}
