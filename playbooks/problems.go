package playbooks

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a playbook file, 1-based.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Problem is one thing wrong with a playbook, where it is.
type Problem struct {
	Pos Pos
	Msg string
}

func (p Problem) String() string { return p.Pos.String() + ": " + p.Msg }

// LoadError holds every problem found in one or more playbooks, in file
// and position order.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems while a playbook is decoded and checked.
type problems struct {
	file string
	list []Problem
}

func (ps *problems) add(line, col int, format string, args ...any) {
	ps.list = append(ps.list, Problem{Pos: Pos{File: ps.file, Line: line, Col: col}, Msg: fmt.Sprintf(format, args...)})
}

// err returns a *LoadError, or nil when nothing was found.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return newLoadError(ps.list)
}

func newLoadError(list []Problem) *LoadError {
	list = slices.Clone(list)
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return &LoadError{Problems: list}
}
