package playbooks

import (
	"fmt"
	"slices"
	"strings"
)

// Section is one mapping of the playbook format, with the fields it takes.
// The loader accepts exactly these fields and docs/playbooks.md documents
// them, both from this one table.
type Section struct {
	Name   string
	Doc    string
	Fields []Field
}

// Field is one key of a Section.
type Field struct {
	Name     string
	Type     string
	Required bool
	Doc      string
}

// Format is the playbook format, section by section.
var Format = []Section{
	{Name: "playbook", Doc: "The file: one playbook per file.", Fields: []Field{
		{"apiVersion", "string", true, "Always `" + APIVersion + "`."},
		{"kind", "string", true, "Always `" + Kind + "`."},
		{"metadata", "metadata", true, "The playbook's name."},
		{"description", "string", false, "What the playbook does, for `kir playbook list` and the docs."},
		{"parameters", "[]parameter", false, "The playbook's inputs."},
		{"steps", "[]step", true, "What it does, in order. At least one."},
	}},
	{Name: "metadata", Fields: []Field{
		{"name", "string", true, "How commands, routing rules and `kir playbook run NAME` refer to the playbook: lowercase letters, digits and `-`, at most 63 characters. A user playbook with a built-in one's name replaces it."},
		{"category", "string", false, "What the playbook is: `" + strings.Join(categories, "`, `") + "`. `kir rotate status` lists the runs of `rotation` and `rollback` playbooks."},
		{"rollback", "string", false, "The playbook that undoes the secret rotations of this one's runs: `kir rotate rollback RUN` runs it once per secret rotated (a playbook that declares `user` takes the rotated x509 user, once), giving it those of `rotation`, `ref`, `oldVersion`, `newVersion`, `user`, `newUser`, `endpointURL` and `region` it declares."},
	}},
	{Name: "parameter", Doc: "An input, set with `--set name=value` or by the command that runs the playbook. Every declared parameter is defined in expressions: given, defaulted, or the zero value of its type.", Fields: []Field{
		{"name", "string", true, "An identifier: letters, digits and `_`, starting with a letter. Expressions use it as `params.NAME`."},
		{"type", "string", true, "One of `string`, `bool`, `int`, `duration` (such as `30s`, `5m`), `[]string` (comma-separated with `--set`), or a checked string: `selector` (a label selector; blank is refused, as it would select every pod), `namespace` (a DNS-1123 label), `pod name` or `node name` (DNS-1123 subdomains). An action parameter of a checked type refuses a bad value at load when it is a literal, and fails its step when it comes from an expression."},
		{"required", "bool", false, "The run refuses to start without it. A required parameter has no default."},
		{"default", "value", false, "The value when not given; a literal of the parameter's type."},
		{"description", "string", false, "What it is for."},
	}},
	{Name: "step", Doc: "One action. Steps run in order; each is recorded in the run's journal before the next starts.", Fields: []Field{
		{"name", "string", true, "Unique in the playbook; an identifier, as later steps refer to its result as `steps.NAME`."},
		{"action", "string", true, "The action to run; `kir actions` and docs/actions.md list them."},
		{"with", "map", false, "The action's parameters. Values are literals or strings with `${{ expression }}`: a string that is exactly one expression takes the expression's value and type; elsewhere results are spliced in as text. Lists and maps may hold expressions too. Only parameters the action takes are allowed, with its types; those it requires must be given."},
		{"when", "expression", false, "A condition (CEL, with or without `${{ }}`): the step runs only if it holds, and is recorded as skipped otherwise."},
		{"onError", "string", false, "`abort` (the default) stops the run when the step fails; `continue` records the failure and goes on."},
		{"timeout", "duration", false, fmt.Sprintf("How long the step may take (default %s).", DefaultStepTimeout)},
		{"approval", "string", false, "`" + ApprovalRequired + "`: the step runs only once a person approved it, for what cannot be undone (revoking tokens, draining a node). Reaching it, the run asks: approved, the step runs and the journal records who approved it and when; denied, the step is recorded `denied` with who and why and the run ends `denied` (what ran before stands, later steps do not run); with no decision yet, the run stops `held` at the step, durably, and resuming it once a decision exists runs it. `kir serve` and the command line ask the same way: `--yes` approves up front, a terminal prompts, and without one the run is held. A dry run shows the step as `needs-approval` and does not run it."},
	}},
}

// section returns the named section of Format.
func section(name string) Section {
	for _, s := range Format {
		if s.Name == name {
			return s
		}
	}
	panic("playbooks: no format section " + name)
}

// checkHandlers panics when a decoder's handlers and the documented
// fields of a section differ: the format table is the one truth.
func checkHandlers[V any](s Section, handlers map[string]V) {
	var doc []string
	for _, f := range s.Fields {
		doc = append(doc, f.Name)
	}
	slices.Sort(doc)
	var have []string
	for k := range handlers {
		have = append(have, k)
	}
	slices.Sort(have)
	if !slices.Equal(doc, have) {
		panic(fmt.Sprintf("playbooks: section %s documents fields %s but the decoder handles %s", s.Name, strings.Join(doc, ","), strings.Join(have, ",")))
	}
}
