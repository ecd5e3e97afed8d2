package falco

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are JSON texts on both sides of json.Valid's line.
var validCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `{"a":1}`, `{"a" : [1, 2.5, -0, -0.0e+1, 1E9, true, false, null]}`,
	`{"a":1,}`, `{"a":1 "b":2}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1}}`, `{"a":1} x`, `[1,]`, `[,1]`, `[1 2]`,
	`"x"`, `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"\x01\"", "\"\x7f\xff\xfe\"",
	`"`, `"abc`, `"abc\`, `0`, `01`, `-`, `-01`, `1.`, `.5`, `1.e3`, `1e`, `1e+`, `1e+5`, `+1`, `0x10`, `1_000`,
	`tru`, `true`, `truex`, `nul`, `null`, `nulll`, `falsey`, "\t\n\r 1 \r\n\t", "\v1", "1\x00", `[[[]]]`, `[[]`, `[]]`,
	`{"a":{"b":{"c":[{"d":"e"}]}}}`, `{"":""}`, `{"a":1,"a":2}`, `[{"a":1},{}]`, `{"a":[}`, `{]`, `[}`,
}

func TestValidIsJSONValid(t *testing.T) {
	for _, c := range validCases {
		if got, want := valid(c), json.Valid([]byte(c)); got != want {
			t.Errorf("valid(%q) = %v, json.Valid says %v", c, got, want)
		}
	}
	// Nesting: encoding/json refuses more than 10,000 levels.
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, c := range []string{
			strings.Repeat("[", depth) + strings.Repeat("]", depth),
			strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1),
			strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth),
		} {
			if got, want := valid(c), json.Valid([]byte(c)); got != want {
				t.Errorf("depth %d, %.12q…: valid says %v, json.Valid %v", depth, c, got, want)
			}
		}
	}
}

// FuzzValid checks valid against json.Valid on arbitrary bytes, seeded
// with the sample alerts and validCases.
func FuzzValid(f *testing.F) {
	AddFileSeeds(f, "../testdata/falco/*.json")
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := valid(string(b)), json.Valid(b); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
