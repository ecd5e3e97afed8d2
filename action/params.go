package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Param describes one parameter of an action.
type Param struct {
	// Name is the key in a step's "with:" map.
	Name string `json:"name"`
	// Type is string, bool, int, duration, selector, namespace, pod name,
	// node name, or a list ([]T) or map (map[string]T) of one of them.
	Type string `json:"type"`
	// Required parameters must be given.
	Required bool `json:"required,omitempty"`
	// Description says what the parameter does.
	Description string `json:"description"`
}

// Duration is a time.Duration that decodes from "30s"-style strings.
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// ParamsOf lists the parameters of the struct type P from its field tags:
// `json:"name"` names the parameter, `doc:"…"` describes it and
// `kir:"required"` makes it required. The struct is the one source of truth
// for decoding, validation and documentation.
func ParamsOf[P any]() []Param {
	return paramsOf(reflect.TypeFor[P]())
}

// paramsOf lists a struct type's parameters; an embedded struct without a
// json name contributes its own, as encoding/json decodes them.
func paramsOf(t reflect.Type) []Param {
	out := make([]Param, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			out = append(out, paramsOf(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, Param{
			Name:        name,
			Type:        typeName(f.Type),
			Required:    f.Tag.Get("kir") == "required",
			Description: f.Tag.Get("doc"),
		})
	}
	return out
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[Selector]():
		return TypeSelector
	case reflect.TypeFor[Namespace]():
		return TypeNamespace
	case reflect.TypeFor[PodName]():
		return TypePodName
	case reflect.TypeFor[NodeName]():
		return TypeNodeName
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Slice:
		return "[]" + typeName(t.Elem())
	case reflect.Map:
		return "map[string]" + typeName(t.Elem())
	}
	return t.String()
}

// Decode converts p into the parameter struct P, strictly: an unknown
// parameter, a value of the wrong type or a missing required parameter is an
// error, and every such problem is reported.
func Decode[P any](p Params) (P, error) {
	var out P
	var errs []error
	known := map[string]Param{}
	for _, param := range ParamsOf[P]() {
		known[param.Name] = param
		if v, ok := p[param.Name]; param.Required && (!ok || isZero(v)) {
			errs = append(errs, fmt.Errorf("parameter %q is required", param.Name))
		}
	}
	for name := range p {
		if _, ok := known[name]; !ok {
			errs = append(errs, fmt.Errorf("unknown parameter %q", name))
		}
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	// One field at a time, so that each type error names its parameter.
	for name, v := range p {
		b, err := json.Marshal(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("parameter %q: %w", name, err))
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{name: b})
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			errs = append(errs, fmt.Errorf("parameter %q: %s", name, typeError(err, known[name])))
		}
	}
	return out, errors.Join(errs...)
}

func typeError(err error, p Param) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got %s", p.Type, te.Value)
	}
	return err.Error()
}

func isZero(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return rv.Len() == 0
	}
	return false
}

// Encode turns a parameter struct back into Params, the inverse of Decode;
// commands use it to hand their flags to an action.
func Encode[P any](in P) Params {
	b, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("encoding %T: %v", in, err)) // parameter structs hold plain values only
	}
	var out Params
	_ = json.Unmarshal(b, &out)
	for k, v := range out {
		if isZero(v) || v == false || v == float64(0) {
			delete(out, k)
		}
	}
	return out
}

// Validator is a parameter struct that can check itself without I/O.
type Validator interface {
	Validate() error
}

// DecodeValid decodes p strictly into P and validates it.
func DecodeValid[P Validator](p Params) (P, error) {
	in, err := Decode[P](p)
	if err != nil {
		return in, err
	}
	return in, in.Validate()
}
