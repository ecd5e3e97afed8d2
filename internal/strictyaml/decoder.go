package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Format is what sets one file format apart: the words of its messages,
// and a few rules on which the formats kir reads have always differed.
type Format struct {
	// Want is what a file should hold, for the problem of an empty one:
	// "empty file: want " + Want.
	Want string
	// OneDocument is the advice on a second document in a file:
	// "a second YAML document: " + OneDocument.
	OneDocument string
	// AliasesIn names what aliases are refused in:
	// "YAML aliases (*x) are not allowed in " + AliasesIn.
	AliasesIn string
	// Hint, if set, adds to the message of a syntax error that stops
	// decoding. near holds the line of the error and the one before it, as
	// far as the file has them.
	Hint func(near [][]byte) string
	// Timestamps makes an unquoted date such as 2026-11-25 a string; without
	// it only a !!str scalar is one.
	Timestamps bool
	// TagHint explains a string that YAML read as a local tag (!name),
	// rather than only saying it is not a string.
	TagHint bool
	// Floats calls a float "the number 1.5" in messages, as an integer is
	// called, rather than quoting it.
	Floats bool
	// TrimPrefix leaves the "yaml: " of the YAML library out of a syntax
	// error that names no line.
	TrimPrefix bool
}

// Decoder decodes the nodes of one file in a Format, adding what is wrong
// to its Problems.
type Decoder struct {
	*Problems
	format Format
}

// NewDecoder returns a Decoder that adds problems to ps.
func NewDecoder(ps *Problems, f Format) *Decoder {
	return &Decoder{Problems: ps, format: f}
}

// Document reads data as one YAML document and returns its root node. ok
// is false when decoding cannot go on: data is empty, not YAML, or holds
// aliases. A second document is a problem, but decoding goes on with the
// first.
func (d *Decoder) Document(data []byte) (root *yaml.Node, ok bool) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.Add(0, 0, "empty file: want %s", d.format.Want)
			return nil, false
		}
		line, msg := d.syntaxError(err)
		if d.format.Hint != nil {
			msg += d.format.Hint(near(data, line))
		}
		d.Add(line, 0, "%s", msg)
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.Add(next.Line, next.Column, "a second YAML document: %s", d.format.OneDocument)
	} else if !errors.Is(err, io.EOF) {
		line, msg := d.syntaxError(err)
		d.Add(line, 0, "%s", msg)
	}
	if !d.noAliases(&doc) {
		return nil, false
	}
	root = &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root, true
}

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError splits a YAML syntax error into its line (0 when it names
// none) and a message.
func (d *Decoder) syntaxError(err error) (int, string) {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, "invalid YAML: " + m[2]
	}
	if d.format.TrimPrefix {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return 0, "invalid YAML: " + msg
}

// near returns line (1-based) of data and the one before it, as far as
// data has them. YAML also ends a line at a lone \r, so the line of an
// error can be past the last \n-separated one (found by fuzzing).
func near(data []byte, line int) [][]byte {
	lines := bytes.Split(data, []byte("\n"))
	lo, hi := max(0, line-2), min(len(lines), line)
	if lo >= hi {
		return nil
	}
	return lines[lo:hi]
}

func (d *Decoder) noAliases(n *yaml.Node) bool {
	ok := true
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			d.At(n, "YAML aliases (*%s) are not allowed in %s", n.Value, d.format.AliasesIn)
			ok = false
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return ok
}

// Mapping walks a mapping node, the what of a format, calling the handler
// of each key in fields with its value and reporting unknown and repeated
// keys.
func (d *Decoder) Mapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.At(n, "%s must be a mapping, not %s", what, d.KindName(n))
		return
	}
	seen := map[string]bool{}
	for k, v := range Pairs(n) {
		key := d.Str(k, "key")
		if seen[key] {
			d.At(k, "%s: key %q given twice", what, key)
			continue
		}
		seen[key] = true
		h, ok := fields[key]
		if !ok {
			d.At(k, "%s: unknown field %q (known: %s)", what, key, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			continue
		}
		h(v)
	}
}

// Expect checks a key of mapping root that must hold exactly want, such
// as apiVersion or kind: got is the string it holds, "" when none.
func (d *Decoder) Expect(root *yaml.Node, key, got, want string) {
	switch {
	case got == "":
		d.At(root, "%s is missing: want %s", key, want)
	case got != want:
		d.At(ValueOf(root, key), "%s %q is not supported: want %s", key, got, want)
	}
}

// Seq returns the items of a list node; nil, after a problem, for any
// other node.
func (d *Decoder) Seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.At(n, "%s must be a list, not %s", what, d.KindName(n))
		return nil
	}
	return n.Content
}

// IsStr reports whether n is a string in the Format.
func (d *Decoder) IsStr(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!str" || d.format.Timestamps && n.Tag == "!!timestamp")
}

// Str returns the string n holds; "", after a problem, when n is not a
// string.
func (d *Decoder) Str(n *yaml.Node, what string) string {
	if d.format.TagHint && n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		d.At(n, "%s: YAML reads %s as a tag: quote a value that starts with !", what, n.Tag)
		return ""
	}
	if !d.IsStr(n) {
		d.At(n, "%s must be a string, not %s", what, d.KindName(n))
		return ""
	}
	return n.Value
}

// Bool returns the boolean n holds; false, after a problem, when n is not
// true or false.
func (d *Decoder) Bool(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.At(n, "%s must be true or false, not %s", what, d.KindName(n))
		return false
	}
	var b bool
	_ = n.Decode(&b)
	return b
}

// KindName describes n for a message saying it is the wrong kind.
func (d *Decoder) KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch {
		case n.Tag == "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case n.Tag == "!!null":
			return "null"
		case n.Tag == "!!int", n.Tag == "!!float" && d.format.Floats:
			return "the number " + n.Value
		case n.Tag == "!!bool":
			return n.Value
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

// Pairs yields the keys and values of a mapping node in file order; it
// yields nothing for any other node.
func Pairs(n *yaml.Node) iter.Seq2[*yaml.Node, *yaml.Node] {
	return func(yield func(k, v *yaml.Node) bool) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

// ValueOf returns the value node of key in mapping n, or nil.
func ValueOf(n *yaml.Node, key string) *yaml.Node {
	for k, v := range Pairs(n) {
		if k.Value == key {
			return v
		}
	}
	return nil
}

// Scalar decodes a scalar that is neither a string nor null: an int64, a
// float64 or a bool.
func Scalar(n *yaml.Node) (any, error) {
	var x any
	if err := n.Decode(&x); err != nil {
		return nil, err
	}
	switch x := x.(type) {
	case int:
		return int64(x), nil
	case bool, float64, int64:
		return x, nil
	}
	return nil, fmt.Errorf("unsupported value %q (tag %s)", n.Value, n.Tag)
}
