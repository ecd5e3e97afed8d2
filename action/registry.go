package action

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Registry is a set of actions by name. Build one with NewRegistry from an
// explicit list; there is no global registry.
type Registry struct {
	byName map[string]Action
}

// NewRegistry returns a registry of the given actions. Names must be unique.
func NewRegistry(actions ...Action) (Registry, error) {
	r := Registry{byName: make(map[string]Action, len(actions))}
	for _, a := range actions {
		name := a.Spec().Name
		if _, dup := r.byName[name]; dup {
			return Registry{}, fmt.Errorf("action %q registered twice", name)
		}
		r.byName[name] = a
	}
	return r, nil
}

// Get returns the named action.
func (r Registry) Get(name string) (Action, bool) {
	a, ok := r.byName[name]
	return a, ok
}

// Output returns an output of the named action as the action's Go type
// (see Action.Output). The output of an action the registry does not have
// (a journal of an older kir) is returned as it is.
func (r Registry) Output(name string, out any) (any, error) {
	a, ok := r.byName[name]
	if !ok {
		return out, nil
	}
	return a.Output(out)
}

// Names returns every action name, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Rules returns the union of the RBAC rules the actions whose names start
// with prefix need, merged so that each (group, resource, resource names)
// appears once with the union of its verbs, in a stable order. A rule
// limited to resource names stays limited.
func (r Registry) Rules(prefix string) []rbacv1.PolicyRule {
	type key struct{ group, resource, names string }
	verbs := map[key]map[string]bool{}
	for _, name := range r.Names() {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, rule := range r.byName[name].Spec().Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					k := key{g, res, strings.Join(rule.ResourceNames, ",")}
					if verbs[k] == nil {
						verbs[k] = map[string]bool{}
					}
					for _, v := range rule.Verbs {
						verbs[k][v] = true
					}
				}
			}
		}
	}
	keys := make([]key, 0, len(verbs))
	for k := range verbs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].group != keys[j].group {
			return keys[i].group < keys[j].group
		}
		if keys[i].resource != keys[j].resource {
			return keys[i].resource < keys[j].resource
		}
		return keys[i].names < keys[j].names
	})
	out := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		vs := make([]string, 0, len(verbs[k]))
		for v := range verbs[k] {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		rule := rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: vs}
		if k.names != "" {
			rule.ResourceNames = strings.Split(k.names, ",")
		}
		out = append(out, rule)
	}
	return out
}
