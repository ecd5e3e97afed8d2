package falco

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a routing config file, 1-based; Line 0 stands for
// the whole file.
type Pos struct {
	File string
	Line int
	Col  int
}

// String returns file:line:col, leaving out what is unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Problem is one thing wrong with a routing config, where it is.
type Problem struct {
	Pos Pos
	Msg string
}

// String returns the problem as file:line:col: message.
func (p Problem) String() string { return p.Pos.String() + ": " + p.Msg }

// ConfigError holds every problem found in a routing config, in position
// order.
type ConfigError struct {
	Problems []Problem
}

// Error returns the problems, one a line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems while a config is decoded and checked.
type problems struct {
	file string
	list []Problem
}

func (ps *problems) add(line, col int, format string, args ...any) {
	ps.list = append(ps.list, Problem{Pos: Pos{File: ps.file, Line: line, Col: col}, Msg: fmt.Sprintf(format, args...)})
}

// err returns a *ConfigError, or nil when nothing was found.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	list := slices.Clone(ps.list)
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return &ConfigError{Problems: list}
}
