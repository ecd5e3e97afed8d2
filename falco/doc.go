// Package falco is kir's side of Falco: the alert model, and the routing
// that turns an alert into playbook runs. It does no I/O beyond reading a
// config file; kir serve receives the alerts, deduplicates and runs.
//
// # Alerts
//
// Decode reads an alert as Falco's http_output (with json_output: true)
// and Falcosidekick's webhook output send it:
//
//	{"uuid": "…", "output": "…", "priority": "Critical",
//	 "rule": "Drop and execute new binary in container",
//	 "time": "2026-11-25T21:02:41.502337114Z", "source": "syscall",
//	 "tags": ["container", …], "hostname": "worker-1",
//	 "output_fields": {"k8s.ns.name": "prod", "proc.pid": 48213, …}}
//
// It is lenient where real senders differ and strict where a wrong value
// would mislead a response:
//
//   - rule and priority are required; everything else may be missing or
//     null: Falco sends no uuid, and older releases no tags, source or
//     hostname. Unknown keys are ignored, so that newer senders work.
//   - A known key with the wrong type is an error naming the key: an alert
//     kir cannot read correctly is refused, never guessed at, and never a
//     panic, whatever the input (FuzzDecode holds Decode to that).
//   - priority is read without regard to case, and Info and Warn are
//     accepted for Informational and Warning.
//   - time is RFC 3339, nanoseconds optional; missing or "" is the zero
//     time.
//   - output_fields become strings: numbers exactly as sent (a 19-digit
//     evt.time or a numeric container id is never rounded through a
//     float), true and false as "true" and "false", objects and lists as
//     compact JSON. null and "<NA>", which Falco prints for a field that
//     has no value for the event (k8s.pod.name of a host process), are
//     left out: a field is either there with a value or absent. An empty
//     string is kept as it is.
//
// Errors are one line, name what is wrong and repeat at most 64 bytes of
// the input, so that a receiver can return them as the body of a 400.
// Decode refuses alerts over MaxAlertSize.
//
// Alert.Vars is the alert as playbooks see it, as alert.rule,
// alert.priority, alert.fields["k8s.pod.name"] and so on.
//
// # Routing
//
// A routing config says which playbook runs for which alerts:
//
//	apiVersion: kir.dev/v1alpha1
//	kind: Routing
//	defaults:
//	  dedupWindow: 10m
//	rules:
//	  - name: contain-critical-prod
//	    match:
//	      rules: [Drop and execute new binary in container, Fileless execution via memfd_create]
//	      priority: ">=Critical"
//	      tags: [container]
//	      source: syscall
//	      fields: ["k8s.ns.name=prod", "container.image.repository!=registry.internal/debug"]
//	    playbook: contain-pod
//	    params:
//	      namespace: ${k8s.ns.name}
//	      name: ${k8s.pod.name}
//	      detach: true
//	    dedup:
//	      key: "${k8s.ns.name}/${k8s.pod.name}"
//	      window: 10m
//	    dryRun: false
//
// A rule matches an alert when every condition it gives holds:
//
//   - rules: the alert's rule is one of these names (exact, case-sensitive).
//   - priority: a comparison with a priority: ">=Critical", ">Error",
//     "<=Notice", "<Warning", "=Warning", or a bare name, which means =.
//     Quote it: YAML reads a leading > as the start of a folded block.
//   - tags: the alert has at least one of these tags (any, not all, like
//     rules: a list is a set of alternatives). An alert without tags
//     matches no tags condition.
//   - source: the alert's source is this one.
//   - fields: every one of these conditions holds (all, unlike the lists
//     above: each is a condition, not an alternative):
//     "name=value" the field is present and equal to value;
//     "name!=value" the field is absent or different (an absent field
//     equals nothing, so != holds for it; add "name" to require it too);
//     "name" the field is present and not empty; "!name" it is absent or
//     empty. Spaces around the name and the value are dropped.
//
// A rule must give at least one condition; priority: ">=Debug" matches
// every alert. Every rule is tried, in order: an alert can run several
// playbooks.
//
// params are the playbook's parameters: literals, or strings in which
// ${field.name} is replaced by the output field's value ("$${" stands for
// a literal "${"). Substituted values are strings even when the whole
// value is one ${field}; the playbook converts them to its parameters'
// types. ${{ }} is playbook expression syntax and is refused here: the
// playbook itself sees the whole alert as alert.*.
//
// A rule that matches but cannot be filled in does not run: if a field it
// refers to is absent or empty, or a substituted string would be over 1024
// bytes, Route returns a Skip with the reason ("field k8s.pod.name
// missing") instead of a Match, so that the receiver can record why
// nothing ran. An empty namespace or pod name must never reach a
// containment playbook, where it could widen what it acts on. To have an
// alert without a field recorded as skipped rather than silently passed
// over, let params require the field instead of match.fields.
//
// dedup.key is a template like params (default DefaultDedupKey, one run
// per pod); the routed key is "<playbook>:<key>", and the receiver runs a
// key at most once per dedup.window (default defaults.dedupWindow, else
// DefaultDedupWindow; 0s turns deduplication off). A rule whose alerts
// carry no pod fields must set its own key, or every alert is skipped.
// dryRun: true makes the receiver report what would run and run nothing.
//
// ParseConfig and LoadConfig decode strictly: unknown keys, wrong types,
// repeated keys, YAML aliases, bad operators, priority names, durations
// and ${…} references, duplicate rule names and missing playbooks are all
// reported at once in a *ConfigError, each as file:line:col: problem.
// Whether each playbook exists and takes the given parameters is for the
// caller to check, with Config.Check.
//
// DefaultConfig is the routing kir serve uses when given none: contain-pod
// for every alert of priority Critical or higher, with namespace and name
// from k8s.ns.name and k8s.pod.name, deduplicated per pod for 10 minutes.
// Alerts of lower priorities match no rule: they are recorded, and nothing
// runs.
package falco
