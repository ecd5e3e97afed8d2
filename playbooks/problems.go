package playbooks

import (
	"cmp"
	"slices"

	"kir.dev/kir/internal/strictyaml"
)

// Pos is a position in a playbook file, 1-based.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string { return strictyaml.Position(p.File, p.Line, p.Col) }

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

func (e *LoadError) Error() string { return strictyaml.Lines(e.Problems) }

// problems collects Problems while a playbook is decoded and checked.
type problems struct {
	file string
	strictyaml.Problems
}

func (ps *problems) add(line, col int, format string, args ...any) {
	ps.Add(line, col, format, args...)
}

// err returns a *LoadError, or nil when nothing was found.
func (ps *problems) err() error {
	list := ps.Sorted()
	if len(list) == 0 {
		return nil
	}
	out := make([]Problem, len(list))
	for i, p := range list {
		out[i] = Problem{Pos: Pos{File: ps.file, Line: p.Line, Col: p.Col}, Msg: p.Msg}
	}
	return &LoadError{Problems: out}
}

// newLoadError sorts the problems of several files into a *LoadError.
func newLoadError(list []Problem) *LoadError {
	list = slices.Clone(list)
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return &LoadError{Problems: list}
}
