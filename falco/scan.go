package falco

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Intake decodes every alert of a storm, so Decode validates an alert once
// (json.Valid) and then walks its objects with the scanner here instead of
// decoding them into maps of json.RawMessage, which checks each object
// again and copies every value. The scanner assumes valid JSON.

// members calls f with each member of the valid JSON object obj, in order:
// its key, decoded, and its value, the raw bytes without surrounding
// space.
func members(obj []byte, f func(key string, value []byte)) {
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
func elements(arr []byte, f func(value []byte)) {
	each(arr, func(i int) int {
		end := valueEnd(arr, i)
		f(arr[i:end])
		return end
	})
}

// each walks the valid JSON object or array b, calling item with the index
// where each member or element starts; item returns the index just past
// it.
func each(b []byte, item func(i int) int) {
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

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
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
// between the quotes.
func jsonString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // a valid JSON string always decodes
	return s
}
