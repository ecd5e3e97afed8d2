package collect

import (
	"fmt"
	"strings"

	"kir.dev/kir/action"
)

// The text of collect's outputs (action.Texter). They do not carry a
// step's error: a failed collection gets its own line in the report.

var (
	_ action.Texter = SnapshotOutput{}
	_ action.Texter = PodOutput{}
	_ action.Texter = SealOutput{}
	_ action.Texter = CustodyOutput{}
	_ action.Texter = NodeOutput{}
)

// Text says which pods were recorded before anything changed; nothing when
// a rerun found them recorded.
func (o SnapshotOutput) Text() []string {
	if len(o.Files) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("evidence: recorded %s as found, in %s", strings.Join(o.Pods, ", "), o.Bundle)}
}

// Text says how much was collected, and which images.
func (o PodOutput) Text() []string {
	return []string{fmt.Sprintf("evidence: collected %d file(s), %s%s", o.Files, humanBytes(o.Bytes), imagesSuffix(o.Images))}
}

func imagesSuffix(images []Image) string {
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

// Text says, per pod, what its node agent's capture brought; a pod with
// none is said by the step's warning.
func (o NodeOutput) Text() []string {
	var lines []string
	for _, p := range o.Pods {
		if p.Capture == "" {
			continue
		}
		lines = append(lines, fmt.Sprintf("evidence: %s: node capture from agent %s on %s: %d file(s), %s (processes, sockets, deleted executables, writable layers)",
			p.Pod, p.Agent, p.Node, p.Files, humanBytes(p.Bytes)))
	}
	return lines
}

// Text says what was sealed, how, and how to check it.
func (o SealOutput) Text() []string {
	signed := "unsigned (no --key)"
	if o.Signed {
		signed = "signed by key " + o.KeyID
	}
	lines := []string{fmt.Sprintf("evidence: sealed %s: %d file(s), %s, %s", o.Bundle, o.Files, humanBytes(o.Bytes), signed)}
	verify := o.Bundle
	if o.Archive != "" {
		lines = append(lines, "evidence: packed into "+o.Archive)
		verify = o.Archive
	}
	pub := o.PublicKey
	if pub == "" {
		pub = "PUBFILE"
	}
	return append(lines, fmt.Sprintf("  check it: kir evidence verify %s --key %s", verify, pub))
}

// Text says what the custody log records.
func (o CustodyOutput) Text() []string {
	if o.Already {
		return []string{fmt.Sprintf("evidence: the %s was already recorded in %s", o.Entry, o.Bundle)}
	}
	return []string{fmt.Sprintf("evidence: %s recorded in the custody log of %s", o.Entry, o.Bundle)}
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
