package playbooks

import (
	"time"
)

// The format's identifiers.
const (
	APIVersion = "kir.dev/v1alpha1"
	Kind       = "Playbook"
)

// The values of a step's onError.
const (
	OnErrorAbort    = "abort"    // stop the run (the default)
	OnErrorContinue = "continue" // record the failure and go on
)

// The categories of a playbook (metadata.category): what it is, so that
// commands find runs by kind rather than by a list of names (`kir rotate
// status` lists rotations and rollbacks).
const (
	CategoryContainment = "containment" // cuts pods or nodes off
	CategoryRelease     = "release"     // undoes a containment
	CategoryCollection  = "collection"  // collects evidence, changes nothing
	CategoryRotation    = "rotation"    // replaces credentials
	CategoryRollback    = "rollback"    // undoes a rotation
)

// ApprovalRequired is the value of a step's approval that makes the run
// ask a person (Engine.Approvals) before the step runs: for what cannot be
// undone, such as revoking a ServiceAccount's tokens or draining a node.
const ApprovalRequired = "required"

var categories = []string{CategoryContainment, CategoryRelease, CategoryCollection, CategoryRotation, CategoryRollback}

// DefaultStepTimeout bounds a step that sets no timeout.
const DefaultStepTimeout = 10 * time.Minute

// Playbook is a loaded, validated playbook.
type Playbook struct {
	// Name is metadata.name: what `kir playbook run NAME` and routing rules
	// refer to.
	Name string
	// Category is metadata.category: what the playbook is (a Category*
	// constant), for the commands that list runs by kind; "" when not said.
	Category string
	// Rollback is metadata.rollback: the playbook `kir rotate rollback`
	// runs to undo the secret rotations of this one's runs; "" when none.
	Rollback    string
	Description string
	Parameters  []Parameter
	Steps       []Step
	// Source says where the playbook came from: a file path, or
	// builtin:NAME.yaml for one shipped inside kir.
	Source string
	// Data is the file as loaded; a run's journal keeps it, so that a
	// resumed run follows the playbook it started with.
	Data []byte
}

// Takes reports whether the playbook has a parameter named name.
func (pb *Playbook) Takes(name string) bool {
	for _, p := range pb.Parameters {
		if p.Name == name {
			return true
		}
	}
	return false
}

// Parameter is one input of a playbook.
type Parameter struct {
	Name string
	// Type is string, bool, int, duration or []string, as in an action's
	// parameters.
	Type        string
	Required    bool
	Default     any
	Description string
	pos         Pos
}

// Step is one action a playbook runs.
type Step struct {
	Name   string
	Action string
	// With holds the action's parameters, literal or computed.
	With map[string]*Value
	// When, if set, is a condition: the step runs only when it holds.
	When *Expr
	// OnError is OnErrorAbort or OnErrorContinue.
	OnError string
	Timeout time.Duration
	// Approval is ApprovalRequired when the step runs only once a person
	// approved it (Engine.Approvals); "" otherwise.
	Approval string
	// pos is the step's; actionPos and whenPos are those of its action
	// and when values, where an editor should jump for a problem in them.
	pos, actionPos, whenPos Pos
}

// Param returns the named parameter.
func (pb *Playbook) Param(name string) (Parameter, bool) {
	for _, p := range pb.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return Parameter{}, false
}

// StepIndex returns the index of the named step, or -1.
func (pb *Playbook) StepIndex(name string) int {
	for i, s := range pb.Steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}
