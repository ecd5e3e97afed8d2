package strictyaml

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Problem is one thing wrong in a file, at its 1-based line and column;
// Line 0 stands for the whole file and Col 0 for the whole line.
type Problem struct {
	Line, Col int
	Msg       string
}

// Problems collects the Problems found in one file. The zero value is
// ready to use.
type Problems struct {
	list []Problem
}

// Add records a problem at line and col.
func (ps *Problems) Add(line, col int, format string, args ...any) {
	ps.list = append(ps.list, Problem{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// At records a problem at node n, or about the whole file when n is nil.
func (ps *Problems) At(n *yaml.Node, format string, args ...any) {
	if n == nil {
		ps.Add(0, 0, format, args...)
		return
	}
	ps.Add(n.Line, n.Column, format, args...)
}

// Len returns the number of problems added so far.
func (ps *Problems) Len() int { return len(ps.list) }

// Sorted returns the problems in position order, those at the same
// position in the order they were added; nil when there are none.
func (ps *Problems) Sorted() []Problem {
	if len(ps.list) == 0 {
		return nil
	}
	list := slices.Clone(ps.list)
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return list
}

// Position formats a position in file as file:line:col, leaving out what
// is unknown (0).
func Position(file string, line, col int) string {
	switch {
	case line == 0:
		return file
	case col == 0:
		return fmt.Sprintf("%s:%d", file, line)
	}
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}

// Lines returns problems one a line, as a format's error prints them.
func Lines[P fmt.Stringer](problems []P) string {
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
