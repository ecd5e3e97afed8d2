package falco

import (
	"kir.dev/kir/internal/strictyaml"
)

// Pos is a position in a routing config file, 1-based; Line 0 stands for
// the whole file.
type Pos struct {
	File string
	Line int
	Col  int
}

// String returns file:line:col, leaving out what is unknown.
func (p Pos) String() string { return strictyaml.Position(p.File, p.Line, p.Col) }

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
func (e *ConfigError) Error() string { return strictyaml.Lines(e.Problems) }

// problems collects Problems while a config is decoded and checked.
type problems struct {
	file string
	strictyaml.Problems
}

func (ps *problems) add(line, col int, format string, args ...any) {
	ps.Add(line, col, format, args...)
}

// err returns a *ConfigError, or nil when nothing was found.
func (ps *problems) err() error {
	list := ps.Sorted()
	if len(list) == 0 {
		return nil
	}
	out := make([]Problem, len(list))
	for i, p := range list {
		out[i] = Problem{Pos: Pos{File: ps.file, Line: p.Line, Col: p.Col}, Msg: p.Msg}
	}
	return &ConfigError{Problems: out}
}
