package contain

import (
	"fmt"
	"sort"
	"strings"

	"kir.dev/kir/action"
	"kir.dev/kir/agent"
)

// The text of contain's outputs (action.Texter): one line per pod or
// node, each with its own error, so a failed step needs no line of its
// own (action.ItemErrors).

var (
	_ action.ItemErrors = IsolateOutput{}
	_ action.ItemErrors = NodesOutput{}
	_ action.ItemErrors = ReleaseOutput{}
	_ action.ItemErrors = DrainOutput{}
	_ action.ItemErrors = ConfirmOutput{}
)

// Text says, per pod, whether its node enforces the isolation, when, and
// which open sessions were cut.
func (o ConfirmOutput) Text() []string {
	var lines []string
	for _, c := range o.Pods {
		id := c.Namespace + "/" + c.Name
		switch c.State {
		case agent.StateEnforced:
			lines = append(lines, fmt.Sprintf("pod %s: ENFORCED on node %s %d ms after its agent saw the label%s", id, c.Node, c.Report.EnforcedAfterMS, cutText(c.Report.Cut)))
			if c.Note != "" {
				lines = append(lines, "  note: "+c.Note)
			}
		case agent.StateNotEnforced:
			lines = append(lines, fmt.Sprintf("pod %s: NOT ENFORCED: %s", id, c.Note))
		default:
			lines = append(lines, fmt.Sprintf("pod %s: not confirmed: %s", id, c.Note))
		}
	}
	return lines
}

func cutText(c *agent.CutRecord) string {
	switch {
	case c == nil:
		return ""
	case c.Kept:
		return fmt.Sprintf("; %d open sessions KEPT open as asked (--no-cut)", c.Remaining)
	}
	s := fmt.Sprintf("; cut %d open sessions (%d TCP, %d UDP) and %d conntrack entries", c.Sessions(), c.TCP, c.UDP, c.Flows)
	if c.Remaining > 0 {
		s += fmt.Sprintf("; %d REMAIN", c.Remaining)
	}
	if len(c.Errors) > 0 {
		s += "; errors: " + strings.Join(c.Errors, "; ")
	}
	return s
}

// ShowsItemErrors marks ConfirmOutput as showing each pod's error.
func (ConfirmOutput) ShowsItemErrors() {}

// Text says, per pod, whether it was isolated and what its policy still
// allows.
func (o IsolateOutput) Text() []string {
	var lines []string
	for _, pod := range o.Pods {
		switch {
		case pod.Fallback != nil:
			lines = append(lines, fmt.Sprintf("pod %s/%s: FALLBACK: its quarantine label was refused (%s); %s", pod.Namespace, pod.Name, pod.Fallback.Reason, pod.Fallback.line(pod.Policy)))
		case pod.Error != "":
			lines = append(lines, fmt.Sprintf("pod %s/%s: FAILED: %s", pod.Namespace, pod.Name, pod.Error))
		case pod.AlreadyContained:
			lines = append(lines, fmt.Sprintf("pod %s/%s: already isolated by NetworkPolicy %s", pod.Namespace, pod.Name, pod.Policy))
		default:
			lines = append(lines, fmt.Sprintf("pod %s/%s: isolated: NetworkPolicy %s denies all ingress and egress%s", pod.Namespace, pod.Name, pod.Policy, o.allowSuffix()))
		}
		if len(pod.DetachedLabels) > 0 {
			lines = append(lines, fmt.Sprintf("  detached: removed labels %s (recorded in %s)", labelList(pod.DetachedLabels), action.AnnotationDetachedLabels))
		}
	}
	return lines
}

func (o IsolateOutput) allowSuffix() string {
	if len(o.AllowedEgress) == 0 {
		return ""
	}
	return " except egress to " + strings.Join(o.AllowedEgress, ", ")
}

// allowed names what the list allows, as IsolateOutput.AllowedEgress.
func (a AllowList) allowed() []string {
	var out []string
	if a.DNS {
		out = append(out, "DNS")
	}
	return append(out, a.EgressCIDRs...)
}

// ShowsItemErrors marks IsolateOutput as showing each pod's error.
func (IsolateOutput) ShowsItemErrors() {}

// Text says, per node, what kir's cordon and taint are now.
func (o NodesOutput) Text() []string {
	lines := make([]string, 0, len(o.Nodes))
	for _, n := range o.Nodes {
		lines = append(lines, "node "+n.Name+": "+n.state())
	}
	return lines
}

func (n NodeOutcome) state() string {
	switch {
	case n.Error != "":
		return "FAILED: " + n.Error
	case n.Released:
		return "released: quarantine taint removed; uncordoned where kir had cordoned it"
	case len(n.ContainedPods) > 0:
		return "stays quarantined: contained pods remain (" + strings.Join(n.ContainedPods, ", ") + ")"
	case n.Tainted || n.Cordoned:
		state := "cordoned and tainted " + action.TaintKey + ":NoSchedule"
		if !n.Cordoned {
			state = "tainted " + action.TaintKey + ":NoSchedule (it was already cordoned by someone else, and stays so on release)"
		}
		if !n.Changed {
			state = "already " + state
		}
		return state
	}
	return "nothing of kir's to release"
}

// ShowsItemErrors marks NodesOutput as showing each node's error.
func (NodesOutput) ShowsItemErrors() {}

// Text says, per pod, what its release undid.
func (o ReleaseOutput) Text() []string {
	var lines []string
	for _, r := range o.Pods {
		id := r.Namespace + "/" + r.Name
		switch {
		case r.Error != "":
			lines = append(lines, fmt.Sprintf("pod %s: FAILED: %s", id, r.Error))
		case r.NotContained:
			lines = append(lines, fmt.Sprintf("pod %s: not contained by kir; nothing to do", id))
		default:
			lines = append(lines, fmt.Sprintf("pod %s: released: NetworkPolicy %s deleted, kir's label and annotations removed", id, r.Policy))
		}
		if len(r.Reattached) > 0 {
			lines = append(lines, fmt.Sprintf("  reattached labels %s: its controller will adopt it again", labelList(r.Reattached)))
		}
		if len(r.StillDetached) > 0 {
			lines = append(lines, fmt.Sprintf("  still detached (labels %s stay removed; --reattach puts them back)", labelList(r.StillDetached)))
		}
		if r.Deleted {
			lines = append(lines, "  deleted")
		}
	}
	return lines
}

// ShowsItemErrors marks ReleaseOutput as showing each pod's error.
func (ReleaseOutput) ShowsItemErrors() {}

// Text says which pods the drain evicted.
func (o DrainOutput) Text() []string {
	evicted := ""
	if len(o.Evicted) > 0 {
		evicted = ": " + strings.Join(o.Evicted, ", ")
	}
	return []string{fmt.Sprintf("node %s: drained, %d pod(s) evicted%s", o.Node, len(o.Evicted), evicted)}
}

// ShowsItemErrors marks DrainOutput too: a failed drain is told by the
// command's error line alone, as kir always has.
func (DrainOutput) ShowsItemErrors() {}

// labelList is labels as k=v,k=v, sorted.
func labelList(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
