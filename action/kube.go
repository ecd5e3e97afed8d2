package action

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The types of parameters that name Kubernetes objects, as Param.Type
// gives them. Their values are strings in parameters and journals; a
// value is checked wherever parameters arrive (Decode), so that a value
// computed from an alert is held to the same rules as a flag.
const (
	TypeSelector  = "selector"
	TypeNamespace = "namespace"
	TypePodName   = "pod name"
	TypeNodeName  = "node name"
)

// Selector is a label selector. The empty string is no selector (the
// parameter is absent); any other value must parse and select something
// narrower than everything: " " would select every pod of a namespace.
type Selector string

// Namespace is a namespace's name: a DNS-1123 label.
type Namespace string

// PodName is a pod's name: a DNS-1123 subdomain.
type PodName string

// NodeName is a node's name: a DNS-1123 subdomain.
type NodeName string

// Check reports what is wrong with the selector; "" is fine (absent).
func (s Selector) Check() error { return CheckString(TypeSelector, string(s)) }

// Check reports what is wrong with the namespace; "" is fine (absent).
func (n Namespace) Check() error { return CheckString(TypeNamespace, string(n)) }

// Check reports what is wrong with the pod name; "" is fine (absent).
func (n PodName) Check() error { return CheckString(TypePodName, string(n)) }

// Check reports what is wrong with the node name; "" is fine (absent).
func (n NodeName) Check() error { return CheckString(TypeNodeName, string(n)) }

// UnmarshalJSON accepts a string that is a valid selector.
func (s *Selector) UnmarshalJSON(b []byte) error {
	return unmarshalChecked(b, TypeSelector, (*string)(s))
}

// UnmarshalJSON accepts a string that is a valid namespace name.
func (n *Namespace) UnmarshalJSON(b []byte) error {
	return unmarshalChecked(b, TypeNamespace, (*string)(n))
}

// UnmarshalJSON accepts a string that is a valid pod name.
func (n *PodName) UnmarshalJSON(b []byte) error {
	return unmarshalChecked(b, TypePodName, (*string)(n))
}

// UnmarshalJSON accepts a string that is a valid node name.
func (n *NodeName) UnmarshalJSON(b []byte) error {
	return unmarshalChecked(b, TypeNodeName, (*string)(n))
}

func unmarshalChecked(b []byte, typ string, out *string) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a %s (a string), got %s", typ, b)
	}
	if err := CheckString(typ, s); err != nil {
		return err
	}
	*out = s
	return nil
}

// StringType reports whether typ is a Param.Type whose values are strings
// that CheckString checks.
func StringType(typ string) bool {
	switch typ {
	case TypeSelector, TypeNamespace, TypePodName, TypeNodeName:
		return true
	}
	return false
}

// CheckString checks s as a value of the parameter type typ: a selector,
// namespace, pod name or node name. The error names the value and what is
// wrong. The empty string passes (an absent parameter: Decode checks that
// required ones are given), and so does any value of another type.
func CheckString(typ, s string) error {
	if s == "" {
		return nil
	}
	var msgs []string
	switch typ {
	case TypeSelector:
		return checkSelector(s)
	case TypeNamespace:
		msgs = validation.IsDNS1123Label(s)
	case TypePodName, TypeNodeName:
		msgs = validation.IsDNS1123Subdomain(s)
	default:
		return nil
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%q is not a %s: %s", s, typ, strings.Join(msgs, "; "))
	}
	return nil
}

func checkSelector(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%q is not a label selector: it is empty, and would select every pod", s)
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a label selector: %w", s, err)
	}
	if sel.Empty() {
		return fmt.Errorf("%q is not a label selector: it selects every pod", s)
	}
	return nil
}

// Checker is a parameter value that can check itself: Selector,
// Namespace, PodName, NodeName.
type Checker interface{ Check() error }

// CheckParam checks a parameter's value and names the parameter in the
// error: the Validate of a parameter struct calls it, for Go callers that
// build the struct without Decode.
func CheckParam(name string, v Checker) error {
	if err := v.Check(); err != nil {
		return fmt.Errorf("parameter %q: %w", name, err)
	}
	return nil
}
