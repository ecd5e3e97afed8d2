package refdocs

import (
	"fmt"
	"strings"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/playbooks"
)

const header = "<!-- Generated from the source by `make docs`; do not edit. -->\n\n"

// Actions renders docs/actions.md: every action with its parameters and
// the RBAC it needs, and the ClusterRole of each capability.
func Actions(reg action.Registry) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("# Actions\n\n")
	b.WriteString("Actions are what playbook steps run (`action:` in a step, parameters in `with:`). " +
		"Each is idempotent and honours `--dry-run`. `kir actions` prints this list; `kir doctor` checks the RBAC each needs.\n\n")
	for _, name := range reg.Names() {
		a, _ := reg.Get(name)
		s := a.Spec()
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", s.Name, s.Summary)
		if s.ReadOnly {
			b.WriteString("Read-only: changes no cluster object and no secret store.\n\n")
		}
		if len(s.Params) > 0 {
			b.WriteString("| parameter | type | required | description |\n|---|---|---|---|\n")
			for _, p := range s.Params {
				fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", p.Name, p.Type, yes(p.Required), cell(p.Description))
			}
			b.WriteString("\n")
		}
		if len(s.Rules) > 0 {
			b.WriteString("RBAC:\n\n")
			for _, r := range s.Rules {
				fmt.Fprintf(&b, "- %s on %s\n", strings.Join(r.Verbs, ", "), resources(r.APIGroups, r.Resources))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("## Roles\n\nOne least-privilege ClusterRole per capability, derived from the rules above (`kir rbac`, `deploy/components/rbac/rbac.yaml`):\n\n")
	for _, c := range catalog.Capabilities {
		fmt.Fprintf(&b, "- `kir-%s`: actions `%s*`. %s\n", c.Name, c.Prefix, c.Description)
	}
	fmt.Fprintf(&b, "\nThe namespaced rotation option binds `%s` per namespace instead of `kir-rotate` cluster-wide (`deploy/components/rotate-namespaced/roles.yaml`). "+
		"What each role reaches, and what whoever holds it can do: [rbac.md](rbac.md).\n", catalog.RotateNamespacedRole)
	return b.String()
}

// Playbooks renders docs/playbooks.md: the format, the expression
// language, the statuses, and the built-in playbooks.
func Playbooks(lib *playbooks.Library) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("# Playbooks\n\n")
	b.WriteString("Every response kir makes is a playbook run: `kir contain pod` runs `contain-pod`, and `kir serve` runs the playbooks its routing rules name. " +
		"Playbooks are YAML, loaded strictly: unknown keys, wrong types, unknown actions, parameters an action does not take and references to undefined " +
		"parameters or later steps are errors, all reported at once as `file:line:col: problem` before anything runs (`kir playbook validate FILE…`).\n\n")
	b.WriteString("Built-in playbooks are inside the kir binary. A user's playbooks add to or replace them by name: `--playbooks-dir DIR` (or `KIR_PLAYBOOKS_DIR`), " +
		"then `--playbook FILE`, which wins. `kir playbook list` shows where each comes from.\n\n")
	b.WriteString("## Format\n\n")
	for _, s := range playbooks.Format {
		fmt.Fprintf(&b, "### %s\n\n", s.Name)
		if s.Doc != "" {
			b.WriteString(s.Doc + "\n\n")
		}
		b.WriteString("| field | type | required | description |\n|---|---|---|---|\n")
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, f.Type, yes(f.Required), cell(f.Doc))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Expressions\n\n" +
		"`with:` values and `when:` conditions are [CEL](https://cel.dev) expressions — the language Kubernetes uses for validation and admission " +
		"policies: no side effects, always terminating, type-checked when the playbook loads, bounded in cost when it runs. " +
		"CEL's standard functions and its string extensions are available. An expression sees:\n\n" +
		"| variable | what |\n|---|---|\n" +
		"| `params.NAME` | the playbook's parameters |\n" +
		"| `steps.NAME.status` | an earlier step's status: `succeeded`, `failed` or `skipped` |\n" +
		"| `steps.NAME.changed` | whether it changed anything |\n" +
		"| `steps.NAME.output` | its action's output (see each action); `{}` when it produced none, so `has(steps.x.output.y)` is false |\n" +
		"| `steps.NAME.error` | why it failed |\n" +
		"| `run.id`, `run.incident`, `run.actor`, `run.dryRun` | the run |\n" +
		"| `run.journal` | the path of the run's journal file (`\"\"` for a dry run), for evidence bundles to carry |\n" +
		"| `run.evidence` | the run's default evidence bundle, `STATE/evidence/<run id>` |\n" +
		"| `alert` | the Falco alert that triggered the run (`kir serve`); `{}` otherwise |\n\n")
	b.WriteString("## Runs and the journal\n\n" +
		"Each run has an id and a journal: `STATE_DIR/runs/RUN.jsonl` (`--state-dir`, `KIR_STATE_DIR`, default `$XDG_STATE_HOME/kir` or " +
		"`~/.local/state/kir`). The journal is an append-only file of JSON lines, each holding the " +
		"SHA-256 of the line before it. It records the playbook itself, the parameters, and each step's start, resolved parameters, result, writes and error. " +
		"A step that acts starts only once its start, and every line before it, is on disk (fsync). A read-only step's start and a step's end are " +
		"made durable by the next fsync or the run's end: lost in a crash, the step runs again on resume. " +
		"Dry runs change nothing and are not recorded.\n\n" +
		"`kir runs list`, `kir runs show RUN`, and `kir runs resume RUN`, which finishes a run that was killed or failed: steps that succeeded (or were " +
		"skipped) are not run again; from the first step that did not succeed, every step runs as it would have. A step that started but whose outcome " +
		"was lost runs again, which is safe because actions are idempotent.\n\n" +
		"| run status | meaning |\n|---|---|\n" +
		"| `succeeded` | every step succeeded or was skipped |\n" +
		"| `failed` | a step failed before anything was changed |\n" +
		"| `partial` | a step failed after others changed something; resume or rerun to finish |\n" +
		"| `interrupted` | stopped before the end (signal, kill); resume to finish |\n\n" +
		"| step status | meaning |\n|---|---|\n" +
		"| `succeeded` | done |\n| `failed` | its action failed; `error` says why |\n| `skipped` | its condition did not hold |\n" +
		"| `pending` | not reached |\n| `unknown` | started, outcome not recorded (the process died); resuming runs it again |\n\n")
	b.WriteString("## Built-in playbooks\n\n")
	for _, e := range lib.List() {
		if !strings.HasPrefix(e.Source, playbooks.BuiltinPrefix) {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n%s\n\n", e.Name, e.Description)
		if len(e.Parameters) > 0 {
			b.WriteString("| parameter | type | default | description |\n|---|---|---|---|\n")
			for _, p := range e.Parameters {
				def := ""
				switch {
				case p.Required:
					def = "required"
				case p.Default != nil:
					def = fmt.Sprintf("`%v`", p.Default)
				}
				fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", p.Name, p.Type, def, cell(p.Description))
			}
			b.WriteString("\n")
		}
		b.WriteString("Steps:\n\n")
		for _, s := range e.Steps {
			when := ""
			if s.When != nil {
				when = fmt.Sprintf(", when `%s`", s.When.Source)
			}
			if s.Approval != "" {
				when += ", needs approval (`approval: " + s.Approval + "`)"
			}
			fmt.Fprintf(&b, "1. `%s`: `%s`%s\n", s.Name, s.Action, when)
		}
		fmt.Fprintf(&b, "\n`kir playbook show %s` prints it.\n\n", e.Name)
	}
	return b.String()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func resources(groups, res []string) string {
	var out []string
	for _, g := range groups {
		for _, r := range res {
			if g == "" {
				out = append(out, "`"+r+"`")
			} else {
				out = append(out, "`"+r+"."+g+"`")
			}
		}
	}
	return strings.Join(out, ", ")
}
