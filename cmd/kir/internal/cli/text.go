package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/contain"
	"kir.dev/kir/playbooks"
)

// printText writes the short human summary of a report.
func printText(w io.Writer, r Report) error {
	p := &textPrinter{w: w}
	dry := ""
	if r.DryRun != "none" && r.DryRun != "" {
		dry = fmt.Sprintf(" (dry run: %s — nothing persisted)", r.DryRun)
	}
	if r.Incident != "" {
		p.line("incident %s, acting as %s%s", r.Incident, r.Actor, dry)
	} else {
		p.line("acting as %s%s", r.Actor, dry)
	}
	for _, s := range r.Steps {
		if r.DryRun != "none" && r.DryRun != "" {
			p.plan(s)
		}
		switch o := typedOutput(s.Action, s.Output).(type) {
		case contain.IsolateOutput:
			for _, pod := range o.Pods {
				switch {
				case pod.Error != "":
					p.line("pod %s/%s: FAILED: %s", pod.Namespace, pod.Name, pod.Error)
				case pod.AlreadyContained:
					p.line("pod %s/%s: already isolated by NetworkPolicy %s", pod.Namespace, pod.Name, pod.Policy)
				default:
					p.line("pod %s/%s: isolated: NetworkPolicy %s denies all ingress and egress%s", pod.Namespace, pod.Name, pod.Policy, allowSuffix(s))
				}
				if len(pod.DetachedLabels) > 0 {
					p.line("  detached: removed labels %s (recorded in %s)", labelList(pod.DetachedLabels), action.AnnotationDetachedLabels)
				}
			}
		case contain.NodesOutput:
			for _, n := range o.Nodes {
				p.node(n)
			}
		case contain.ReleaseOutput:
			for _, pod := range o.Pods {
				p.released(pod)
			}
		case contain.DrainOutput:
			p.line("node %s: drained, %d pod(s) evicted%s", o.Node, len(o.Evicted), listSuffix(o.Evicted))
		case collect.SnapshotOutput:
			if len(o.Files) > 0 {
				p.line("evidence: recorded %s as found, in %s", strings.Join(o.Pods, ", "), o.Bundle)
			}
		case collect.PodOutput:
			p.line("evidence: collected %d file(s), %s%s", o.Files, humanBytes(o.Bytes), imagesSuffix(o.Images))
		case collect.SealOutput:
			p.sealed(o)
		case collect.CustodyOutput:
			if o.Already {
				p.line("evidence: the %s was already recorded in %s", o.Entry, o.Bundle)
			} else {
				p.line("evidence: %s recorded in the custody log of %s", o.Entry, o.Bundle)
			}
		}
		p.status(r, s)
	}
	p.outcome(r)
	return p.err
}

// outcome prints the run's warnings and what to do next.
func (p *textPrinter) outcome(r Report) {
	for _, warn := range r.Warnings {
		p.line("warning: %s", warn)
	}
	switch {
	case r.Status == playbooks.RunPartial && r.Run != "":
		p.line("PARTIAL: some steps were done and some failed (see above); run the same command again, or kir runs resume %s, to finish", r.Run)
	case r.Status == playbooks.RunPartial:
		p.line("PARTIAL: some steps were done and some failed (see above); run the same command again to finish")
	case r.Status == playbooks.RunInterrupted && r.Run != "":
		p.line("INTERRUPTED: finish with kir runs resume %s", r.Run)
	}
	if r.Run != "" {
		p.line("recorded as run %s (kir runs show %s)", r.Run, r.Run)
	}
}

// status prints what a step's status adds to its output's lines.
func (p *textPrinter) status(r Report, s playbooks.StepRun) {
	dry := r.DryRun != "none" && r.DryRun != ""
	switch s.Status {
	case playbooks.StepFailed:
		if s.Output == nil || strings.HasPrefix(s.Action, "collect.") {
			p.line("%s: FAILED: %s", s.Name, s.Error)
		}
	case playbooks.StepSkipped:
		// A step the responder's flags turned off (--no-cordon,
		// --no-evidence, no --evidence) is no news; the plan and -o
		// json show every condition.
		if dry {
			p.line("%s: skipped: its condition does not hold: %s", s.Name, s.Condition)
		}
	case playbooks.StepUnknown:
		p.line("%s: started, outcome unknown (the run was interrupted); resuming runs it again", s.Name)
	case playbooks.StepPending:
		if r.Status != playbooks.RunSucceeded {
			p.line("%s: not run", s.Name)
		}
	}
}

type textPrinter struct {
	w   io.Writer
	err error
}

func (p *textPrinter) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *textPrinter) node(n contain.NodeOutcome) {
	switch {
	case n.Error != "":
		p.line("node %s: FAILED: %s", n.Name, n.Error)
	case n.Released:
		p.line("node %s: released: quarantine taint removed; uncordoned where kir had cordoned it", n.Name)
	case len(n.ContainedPods) > 0:
		p.line("node %s: stays quarantined: contained pods remain (%s)", n.Name, strings.Join(n.ContainedPods, ", "))
	case n.Tainted || n.Cordoned:
		state := "cordoned and tainted " + action.TaintKey + ":NoSchedule"
		if !n.Cordoned {
			state = "tainted " + action.TaintKey + ":NoSchedule (it was already cordoned by someone else, and stays so on release)"
		}
		if !n.Changed {
			state = "already " + state
		}
		p.line("node %s: %s", n.Name, state)
	default:
		p.line("node %s: nothing of kir's to release", n.Name)
	}
}

func (p *textPrinter) released(o contain.ReleaseOutcome) {
	id := o.Namespace + "/" + o.Name
	switch {
	case o.Error != "":
		p.line("pod %s: FAILED: %s", id, o.Error)
	case o.NotContained:
		p.line("pod %s: not contained by kir; nothing to do", id)
	default:
		p.line("pod %s: released: NetworkPolicy %s deleted, kir's label and annotations removed", id, o.Policy)
	}
	if len(o.Reattached) > 0 {
		p.line("  reattached labels %s: its controller will adopt it again", labelList(o.Reattached))
	}
	if len(o.StillDetached) > 0 {
		p.line("  still detached (labels %s stay removed; --reattach puts them back)", labelList(o.StillDetached))
	}
	if o.Deleted {
		p.line("  deleted")
	}
}

// plan prints a step of a dry run: whether its condition holds, the
// parameters it resolved to and the writes it sent or would send.
func (p *textPrinter) plan(s playbooks.StepRun) {
	p.line("step %s (%s): %s", s.Name, s.Action, s.Status)
	if s.Condition != "" && s.Holds != nil {
		p.line("  when %s: %v", s.Condition, *s.Holds)
	}
	if len(s.Params) > 0 {
		b, _ := json.Marshal(s.Params)
		p.line("  with %s", b)
	}
	for _, w := range s.Writes {
		id := w.Name
		if w.Namespace != "" {
			id = w.Namespace + "/" + w.Name
		}
		state := "would be sent"
		if w.Done {
			state = "accepted by the server, not persisted"
		}
		if w.Error != "" {
			state = "REJECTED: " + w.Error
		}
		p.line("  %s %s %s: %s", w.Verb, w.Kind, id, state)
		if w.Done && w.Body != nil { // a server dry run: the exact object
			if b, err := yaml.Marshal(w.Body); err == nil {
				p.line("    %s", strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    "))
			}
		}
	}
}

// typedOutput returns an action's output as its Go type, whether it comes
// from this process or, as plain JSON values, from a journal.
func typedOutput(actionName string, out any) any {
	var typed any
	switch actionName {
	case "contain.isolate-pod":
		typed = &contain.IsolateOutput{}
	case "contain.cordon-node", "contain.release-node":
		typed = &contain.NodesOutput{}
	case "contain.release-pod":
		typed = &contain.ReleaseOutput{}
	case "contain.drain-node":
		typed = &contain.DrainOutput{}
	case "collect.snapshot-pod":
		typed = &collect.SnapshotOutput{}
	case "collect.pod":
		typed = &collect.PodOutput{}
	case "collect.seal":
		typed = &collect.SealOutput{}
	case "collect.custody":
		typed = &collect.CustodyOutput{}
	default:
		return out
	}
	if out == nil {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil || json.Unmarshal(b, typed) != nil {
		return out
	}
	return reflect.ValueOf(typed).Elem().Interface()
}

func (p *textPrinter) sealed(o collect.SealOutput) {
	signed := "unsigned (no --key)"
	if o.Signed {
		signed = "signed by key " + o.KeyID
	}
	p.line("evidence: sealed %s: %d file(s), %s, %s", o.Bundle, o.Files, humanBytes(o.Bytes), signed)
	if o.Archive != "" {
		p.line("evidence: packed into %s", o.Archive)
	}
	verify := o.Bundle
	if o.Archive != "" {
		verify = o.Archive
	}
	pub := o.PublicKey
	if pub == "" {
		pub = "PUBFILE"
	}
	p.line("  check it: kir evidence verify %s --key %s", verify, pub)
}

func imagesSuffix(images []collect.Image) string {
	if len(images) == 0 {
		return ""
	}
	var refs []string
	for _, im := range images {
		if im.Error == "" {
			refs = append(refs, im.Reference)
		}
	}
	if len(refs) == 0 {
		return ", no image stored"
	}
	return ", images " + strings.Join(refs, ", ")
}

// humanBytes is n in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}

func allowSuffix(s playbooks.StepRun) string {
	var allowed []string
	if v, _ := s.Params["allowDNS"].(bool); v {
		allowed = append(allowed, "DNS")
	}
	if v, ok := s.Params["allowEgressCIDRs"].([]any); ok {
		for _, c := range v {
			allowed = append(allowed, fmt.Sprint(c))
		}
	}
	if len(allowed) == 0 {
		return ""
	}
	return " except egress to " + strings.Join(allowed, ", ")
}

func labelList(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func listSuffix(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return ": " + strings.Join(items, ", ")
}
