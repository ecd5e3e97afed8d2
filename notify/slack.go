package notify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxListed is how many runs of a kind other than held a Slack digest
// names; the rest are counted. Held runs are all listed, each with its
// approve command: a held run nobody hears of is never approved.
const maxListed = 20

// renderSlack is the body for a Slack incoming webhook: {"text": ...} in
// mrkdwn, which Slack-compatible receivers (Mattermost, Rocket.Chat) read
// too.
func renderSlack(m *Message, _ http.Header, _ time.Time) ([]byte, error) {
	var text string
	if m.Digest == nil && len(m.Events) == 1 {
		text = slackEvent(&m.Events[0])
	} else {
		text = slackDigest(m)
	}
	return json.Marshal(struct {
		Text string `json:"text"`
	}{text})
}

// esc escapes what Slack reads as markup: <...> makes links and
// mentions (<!channel>), so an alert's text must not produce one.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// code puts s in a code span; a backtick in s would end it early.
func code(s string) string {
	return "`" + esc(strings.ReplaceAll(s, "`", "'")) + "`"
}

func slackEvent(e *Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*kir: run %s %s*", code(e.Run), e.Kind)
	if e.Held != nil {
		fmt.Fprintf(&b, " — %s", esc(e.Held.Reason))
		if e.Held.Step != "" {
			fmt.Fprintf(&b, " at step %s", code(e.Held.Step))
		}
	}
	b.WriteString("\n")
	var about []string
	for _, f := range [][2]string{{"incident", e.Incident}, {"playbook", e.Playbook}, {"rule", e.Rule}} {
		if f[1] != "" {
			about = append(about, f[0]+" "+code(f[1]))
		}
	}
	line(&b, "Run", strings.Join(about, " · "))
	if a := e.Alert; a != nil {
		s := esc(a.Rule)
		if a.Priority != "" {
			s += " (" + esc(a.Priority) + ")"
		}
		if !a.Time.IsZero() {
			s += " at " + a.Time.UTC().Format(time.RFC3339)
		}
		line(&b, "Alert", s)
	}
	line(&b, "Pods", targets(podNames(e.Pods), e.MorePods))
	line(&b, "Nodes", targets(e.Nodes, e.MoreNodes))
	if ev := e.Evidence; ev != nil {
		s := code(ev.Bundle)
		if ev.Replica != "" {
			s += " on " + code(ev.Replica)
		}
		line(&b, "Evidence", s)
	}
	line(&b, "Reason", esc(e.Reason))
	if h := e.Held; h != nil {
		if !h.Expires.IsZero() {
			line(&b, "Expires", h.Expires.UTC().Format(time.RFC3339))
		}
		line(&b, "Approve", code(h.Approve))
		line(&b, "Deny", code(h.Deny))
	}
	return strings.TrimRight(b.String(), "\n")
}

func line(b *strings.Builder, label, value string) {
	if value != "" && value != "``" {
		fmt.Fprintf(b, "%s: %s\n", label, value)
	}
}

func podNames(pods []Pod) []string {
	s := make([]string, len(pods))
	for i, p := range pods {
		s[i] = p.String()
	}
	return s
}

func targets(names []string, more int) string {
	if len(names) == 0 {
		return ""
	}
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = code(n)
	}
	out := strings.Join(s, ", ")
	if more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

func slackDigest(m *Message) string {
	var b strings.Builder
	window := ""
	if m.Digest != nil {
		window = " within " + m.Digest.Window
	}
	var counts []string
	byKind := map[Kind][]*Event{}
	for i := range m.Events {
		e := &m.Events[i]
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	for _, k := range Kinds {
		if n := len(byKind[k]); n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, k))
		}
	}
	fmt.Fprintf(&b, "*kir: %d runs%s* — %s\n", len(m.Events), window, strings.Join(counts, ", "))
	if held := byKind[KindHeld]; len(held) > 0 {
		b.WriteString("*Held, waiting for approval:*\n")
		for _, e := range held {
			fmt.Fprintf(&b, "• %s%s%s: %s\n", code(e.Run), firstPod(e), heldStep(e), code(e.Held.Approve))
		}
	}
	for _, k := range []Kind{KindFailed, KindRefused, KindFinished} {
		evs := byKind[k]
		if len(evs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s:*\n", strings.ToUpper(string(k[:1]))+string(k[1:]))
		for i, e := range evs {
			if i == maxListed {
				fmt.Fprintf(&b, "• and %d more\n", len(evs)-maxListed)
				break
			}
			reason := ""
			if e.Reason != "" {
				reason = ": " + esc(e.Reason)
			}
			fmt.Fprintf(&b, "• %s%s%s\n", code(e.Run), firstPod(e), reason)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func firstPod(e *Event) string {
	if len(e.Pods) == 0 {
		return ""
	}
	s := " (" + code(e.Pods[0].String())
	if n := len(e.Pods) - 1 + e.MorePods; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return s + ")"
}

func heldStep(e *Event) string {
	if e.Held == nil || e.Held.Step == "" {
		return ""
	}
	return " at step " + code(e.Held.Step)
}
