package falco

import (
	"fmt"
	"strings"
	"unicode"
)

// template is a string with ${field.name} references to output fields.
// "$${" stands for a literal "${".
type template []segment

// segment is literal text, or a reference to the output field named ref.
type segment struct {
	text string
	ref  string
}

// parseTemplate splits s into text and field references.
func parseTemplate(s string) (template, error) {
	var t template
	var text strings.Builder
	for rest := s; rest != ""; {
		i := strings.Index(rest, "${")
		if i < 0 {
			text.WriteString(rest)
			break
		}
		if i > 0 && rest[i-1] == '$' { // $${ is a literal ${
			text.WriteString(rest[:i-1] + "${")
			rest = rest[i+2:]
			continue
		}
		text.WriteString(rest[:i])
		rest = rest[i+2:]
		if strings.HasPrefix(rest, "{") {
			return nil, fmt.Errorf("%s: ${{ }} is playbook expression syntax; routing substitutes output fields as ${field.name}, and the playbook sees the whole alert as alert.*", quote(s))
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 || strings.Contains(rest[:end], "${") {
			return nil, fmt.Errorf("%s: ${ is not closed by }", quote(s))
		}
		name := strings.TrimSpace(rest[:end])
		rest = rest[end+1:]
		if name == "" {
			return nil, fmt.Errorf("%s: empty ${}: name an output field, such as ${k8s.pod.name}", quote(s))
		}
		if err := checkFieldName(name); err != nil {
			return nil, fmt.Errorf("%s: %v", quote(s), err)
		}
		if text.Len() > 0 {
			t = append(t, segment{text: text.String()})
			text.Reset()
		}
		t = append(t, segment{ref: name})
	}
	if text.Len() > 0 {
		t = append(t, segment{text: text.String()})
	}
	return t, nil
}

// checkFieldName accepts what Falco field names look like, such as
// k8s.pod.name, proc.aname[2] or k8s.pod.label[app.kubernetes.io/name],
// without trying to know every field of every plugin.
func checkFieldName(name string) error {
	if len(name) > 256 {
		return fmt.Errorf("field name %s is too long", quote(name))
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || strings.ContainsRune("=!${}\"'", r) {
			return fmt.Errorf("%s is not a Falco field name such as k8s.pod.name", quote(name))
		}
	}
	return nil
}
