package strictyaml

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

// decodeThing decodes a document of a small format, {name: string,
// on: bool, tags: [string]}, and returns its problems one a line.
func decodeThing(f Format, data string) []string {
	var ps Problems
	d := NewDecoder(&ps, f)
	if root, ok := d.Document([]byte(data)); ok {
		d.Mapping(root, "thing", map[string]func(*yaml.Node){
			"name": func(n *yaml.Node) { d.Str(n, "name") },
			"on":   func(n *yaml.Node) { d.Bool(n, "on") },
			"tags": func(n *yaml.Node) {
				for _, item := range d.Seq(n, "tags") {
					d.Str(item, "tag")
				}
			},
		})
	}
	var out []string
	for _, p := range ps.Sorted() {
		out = append(out, fmt.Sprintf("%d:%d: %s", p.Line, p.Col, p.Msg))
	}
	return out
}

func TestDecoder(t *testing.T) {
	t.Parallel()
	base := Format{Want: "a Thing", OneDocument: "one thing a file", AliasesIn: "things"}
	refined := base
	refined.Timestamps, refined.TagHint, refined.Floats, refined.TrimPrefix = true, true, true, true
	refined.Hint = func(near [][]byte) string { return fmt.Sprintf(" (near %q)", near) }
	tests := []struct {
		name   string
		format Format
		data   string
		want   []string
	}{
		{"valid", base, "name: a\non: true\ntags: [x, y]\n", nil},
		{"empty", base, "", []string{"0:0: empty file: want a Thing"}},
		{"second document", base, "name: a\n---\nname: b\n", []string{"2:1: a second YAML document: one thing a file"}},
		{"aliases", base, "name: &n a\ntags: [*n]\n", []string{"2:8: YAML aliases (*n) are not allowed in things"}},
		{
			"every problem at once", base,
			"name: 1\nname: a\nbogus: 2\non: yes\ntags: x\n",
			[]string{
				"1:7: name must be a string, not the number 1",
				`2:1: thing: key "name" given twice`,
				`3:1: thing: unknown field "bogus" (known: name, on, tags)`,
				`4:5: on must be true or false, not the string "yes"`,
				`5:7: tags must be a list, not the string "x"`,
			},
		},
		{"not a mapping", base, "- a\n", []string{"1:1: thing must be a mapping, not a list"}},
		{"syntax", base, "name: a\n  b: c\n", []string{"2:0: invalid YAML: mapping values are not allowed in this context"}},
		{"timestamp", base, "name: 2026-11-25\n", []string{`1:7: name must be a string, not "2026-11-25"`}},
		{"timestamp refined", refined, "name: 2026-11-25\n", nil},
		{"float", base, "name: 1.5\n", []string{`1:7: name must be a string, not "1.5"`}},
		{"float refined", refined, "name: 1.5\n", []string{"1:7: name must be a string, not the number 1.5"}},
		{"tag", base, "name: !x a\n", []string{`1:7: name must be a string, not "a"`}},
		{"tag refined", refined, "name: !x a\n", []string{"1:7: name: YAML reads !x as a tag: quote a value that starts with !"}},
		{"no line", base, "name: \x01\n", []string{"0:0: invalid YAML: yaml: control characters are not allowed"}},
		{"no line refined", refined, "name: \x01\n", []string{`0:0: invalid YAML: control characters are not allowed (near [])`}},
		{"hint", refined, "a: b\nname: a\n  b: c\n", []string{`3:0: invalid YAML: mapping values are not allowed in this context (near ["name: a" "  b: c"])`}},
		// YAML ends a line at a lone \r too: the error's line is past the
		// last \n-separated one (found by fuzzing the routing config).
		{"lone CR", refined, "\"\r\r\r0", []string{`4:0: invalid YAML: found unexpected end of stream (near [])`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, decodeThing(tt.format, tt.data)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScalar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		data string
		want any
		err  string
	}{
		{"42", int64(42), "<nil>"},
		{"-1.5", -1.5, "<nil>"},
		{"true", true, "<nil>"},
		{"18446744073709551615", nil, `unsupported value "18446744073709551615" (tag !!int)`},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.data), &doc); err != nil {
			t.Fatal(err)
		}
		got, err := Scalar(doc.Content[0])
		if got != tt.want || fmt.Sprint(err) != tt.err {
			t.Errorf("Scalar(%s) = %v, %v; want %v, %s", tt.data, got, err, tt.want, tt.err)
		}
	}
}

func TestSorted(t *testing.T) {
	t.Parallel()
	var ps Problems
	ps.Add(2, 1, "b")
	ps.Add(0, 0, "file")
	ps.Add(1, 5, "a")
	ps.Add(2, 1, "c")
	want := []Problem{{0, 0, "file"}, {1, 5, "a"}, {2, 1, "b"}, {2, 1, "c"}}
	if diff := cmp.Diff(want, ps.Sorted()); diff != "" {
		t.Errorf("Sorted (-want +got):\n%s", diff)
	}
	if got := (&Problems{}).Sorted(); got != nil {
		t.Errorf("Sorted of none = %v, want nil", got)
	}
}

func TestPosition(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		line, col int
		want      string
	}{{0, 0, "f.yaml"}, {3, 0, "f.yaml:3"}, {3, 7, "f.yaml:3:7"}} {
		if got := Position("f.yaml", tt.line, tt.col); got != tt.want {
			t.Errorf("Position(f.yaml, %d, %d) = %q, want %q", tt.line, tt.col, got, tt.want)
		}
	}
}
