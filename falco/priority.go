package falco

import (
	"fmt"
	"strings"
)

// Priority is the severity Falco gives an alert. Priorities are ordered:
// PriorityEmergency is the highest, PriorityDebug the lowest, and the zero
// value is no priority at all (see Valid).
type Priority int

// Falco's priorities, lowest first, so that they compare as Falco ranks them.
const (
	PriorityDebug Priority = iota + 1
	PriorityInformational
	PriorityNotice
	PriorityWarning
	PriorityError
	PriorityCritical
	PriorityAlert
	PriorityEmergency
)

// priorityNames are Falco's spellings, indexed by Priority.
var priorityNames = [...]string{
	PriorityDebug:         "Debug",
	PriorityInformational: "Informational",
	PriorityNotice:        "Notice",
	PriorityWarning:       "Warning",
	PriorityError:         "Error",
	PriorityCritical:      "Critical",
	PriorityAlert:         "Alert",
	PriorityEmergency:     "Emergency",
}

// priorityAliases are the short spellings Falco accepts in rule files
// (and some forwarders send), lowercased.
var priorityAliases = map[string]Priority{
	"info": PriorityInformational,
	"warn": PriorityWarning,
}

// ParsePriority returns the priority named s, ignoring case: Falco's own
// names (Emergency, Alert, Critical, Error, Warning, Notice, Informational,
// Debug) and the short forms Info and Warn.
func ParsePriority(s string) (Priority, error) {
	low := strings.ToLower(s)
	for p := PriorityDebug; p <= PriorityEmergency; p++ {
		if low == strings.ToLower(priorityNames[p]) {
			return p, nil
		}
	}
	if p, ok := priorityAliases[low]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("priority %s is not a Falco priority: want Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug", quote(s))
}

// Valid reports whether p is one of Falco's priorities.
func (p Priority) Valid() bool { return p >= PriorityDebug && p <= PriorityEmergency }

// String returns Falco's spelling of p, such as "Critical".
func (p Priority) String() string {
	if !p.Valid() {
		return fmt.Sprintf("Priority(%d)", int(p))
	}
	return priorityNames[p]
}

// MarshalText encodes p as its name, so that a Priority is a string in
// JSON and YAML.
func (p Priority) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("cannot encode invalid priority %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText decodes a priority name as ParsePriority does.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
