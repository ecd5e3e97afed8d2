package falco

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Intake decodes every alert of a storm. Decode copies the alert into one
// string, checks it with valid (what json.Valid says, in a fraction of its
// time) and walks its objects with the scanner here: the keys and values
// it returns are substrings of that one string, so decoding an alert
// allocates a handful of times, not once per field. The walking functions
// assume valid JSON.

// maxDepth is how deeply encoding/json lets arrays and objects nest.
const maxDepth = 10000

// valid reports whether s is one JSON value, with optional white space
// around it: exactly what json.Valid(s) reports (invalid UTF-8 inside
// strings included, which encoding/json accepts and replaces when
// decoding).
func valid(s string) bool {
	var stackBuf [32]byte
	open := stackBuf[:0] // '{' or '[' for each container left open
	i := skipSpace(s, 0)
	for {
		// A value starts at i.
		if i >= len(s) {
			return false
		}
		ok := true
		switch c := s[i]; c {
		case '{', '[':
			if len(open) >= maxDepth {
				return false
			}
			close := byte('}')
			if c == '[' {
				close = ']'
			}
			if i = skipSpace(s, i+1); i < len(s) && s[i] == close {
				i++ // empty: a complete value
				break
			}
			open = append(open, c)
			if c == '[' {
				continue // its first element
			}
			if i, ok = validMemberKey(s, i); !ok {
				return false
			}
			continue // its first member's value
		case '"':
			i, ok = validString(s, i)
		case 't':
			i, ok = validLiteral(s, i, "true")
		case 'f':
			i, ok = validLiteral(s, i, "false")
		case 'n':
			i, ok = validLiteral(s, i, "null")
		default:
			i, ok = validNumber(s, i)
		}
		if !ok {
			return false
		}
		// A value ended at i: close what it completes, then expect the
		// next member or element, or the end.
		for {
			i = skipSpace(s, i)
			if len(open) == 0 {
				return i == len(s)
			}
			if i >= len(s) {
				return false
			}
			in := open[len(open)-1]
			switch {
			case s[i] == ',':
				i = skipSpace(s, i+1)
				if in == '{' {
					if i, ok = validMemberKey(s, i); !ok {
						return false
					}
				}
			case in == '{' && s[i] == '}', in == '[' && s[i] == ']':
				open = open[:len(open)-1]
				i++
				continue
			default:
				return false
			}
			break
		}
	}
}

// validMemberKey checks the key and colon of an object member starting at
// s[i], and returns the index of its value, past white space.
func validMemberKey(s string, i int) (int, bool) {
	if i >= len(s) || s[i] != '"' {
		return i, false
	}
	i, ok := validString(s, i)
	if !ok {
		return i, false
	}
	if i = skipSpace(s, i); i >= len(s) || s[i] != ':' {
		return i, false
	}
	return skipSpace(s, i+1), true
}

// validString checks the string starting at s[i] (its opening quote) and
// returns the index just past it.
func validString(s string, i int) (int, bool) {
	for i++; i < len(s); i++ {
		// Eight plain bytes (none a quote, a backslash or a control
		// character) at a time: alerts are mostly long strings.
		for i+8 <= len(s) && plain8(load8(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i++; i >= len(s) {
				return i, false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) {
					return i, false
				}
				for _, h := range []byte(s[i+1 : i+5]) {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// load8 reads s[i:i+8] as a little-endian word (one load, once compiled).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plain8 reports whether none of x's bytes is a quote, a backslash or below
// 0x20: the bytes a string scanner must stop at.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - ones) & ^v & highs } // a byte of v is 0
	// A byte below 0x20, or equal to '"' or '\\' (the tests are exact for
	// "any byte", bytes of 0x80 and above included).
	return ((x-0x20*ones)&^x&highs)|zero(x^('"'*ones))|zero(x^('\\'*ones)) == 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validNumber checks the number starting at s[i] and returns the index
// just past it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
func validNumber(s string, i int) (int, bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(s, i)
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		if j := digits(s, i+1); j > i+1 {
			i = j
		} else {
			return i, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		if i++; i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

// digits returns the index past the digits starting at s[i].
func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

func validLiteral(s string, i int, lit string) (int, bool) {
	if strings.HasPrefix(s[i:], lit) {
		return i + len(lit), true
	}
	return i, false
}

// members calls f with each member of the valid JSON object obj, in order:
// its key, decoded, and its value, the raw text without surrounding space.
func members(obj string, f func(key, value string)) {
	each(obj, func(i int) int {
		end := stringEnd(obj, i)
		key := jsonString(obj[i:end])
		i = skipSpace(obj, skipSpace(obj, end)+1) // past ':'
		end = valueEnd(obj, i)
		f(key, obj[i:end])
		return end
	})
}

// elements calls f with each element of the valid JSON array arr, in
// order, without surrounding space.
func elements(arr string, f func(value string)) {
	each(arr, func(i int) int {
		end := valueEnd(arr, i)
		f(arr[i:end])
		return end
	})
}

// each walks the valid JSON object or array b, calling item with the index
// where each member or element starts; item returns the index just past
// it.
func each(b string, item func(i int) int) {
	i := skipSpace(b, 0) + 1 // past '{' or '['
	for {
		i = skipSpace(b, i)
		if b[i] == '}' || b[i] == ']' {
			return
		}
		i = skipSpace(b, item(i))
		if b[i] != ',' {
			return // '}' or ']'
		}
		i++
	}
}

func skipSpace(b string, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the valid string that starts at
// b[i]: its first quote not escaped, which an even number of backslashes
// (escaped themselves) precedes.
func stringEnd(b string, i int) int {
	for j := i + 1; ; j++ {
		j += strings.IndexByte(b[j:], '"')
		k := j
		for b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1
		}
	}
}

// valueEnd returns the index just past the valid value that starts at
// b[i].
func valueEnd(b string, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i // a number, true, false or null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// jsonString decodes a valid JSON string; one without escapes, in valid
// UTF-8 (encoding/json replaces invalid bytes with U+FFFD), is its text
// between the quotes, which shares raw's memory.
func jsonString(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 && utf8.ValidString(raw) {
		return raw[1 : len(raw)-1]
	}
	var s string
	_ = json.Unmarshal([]byte(raw), &s) // a valid JSON string always decodes
	return s
}
