package rotate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
)

// Default shape of generated values.
const (
	DefaultLength   = 32
	DefaultAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// ValueSource says where a new value comes from: generated from crypto/rand
// with Length characters of Alphabet, or read from File.
type ValueSource struct {
	Length   int
	Alphabet string
	// File, when set, holds the new value (a trailing newline is
	// dropped); "-" is the standard input, read when the value is issued
	// (a resumed run reads it again).
	File string
}

// New returns a new value. Errors never contain it.
func (s ValueSource) New() (string, error) {
	if s.File != "" {
		var b []byte
		var err error
		if s.File == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		} else {
			b, err = os.ReadFile(s.File)
		}
		if err != nil {
			return "", fmt.Errorf("reading the new value: %w", err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("reading the new value: %s is empty", s.File)
		}
		return v, nil
	}
	return generate(s.Length, s.Alphabet)
}

// generate returns n characters drawn uniformly from alphabet.
func generate(n int, alphabet string) (string, error) {
	if n <= 0 {
		n = DefaultLength
	}
	if alphabet == "" {
		alphabet = DefaultAlphabet
	}
	chars := []rune(alphabet)
	max := big.NewInt(int64(len(chars)))
	out := make([]rune, n)
	for i := range out {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generating a value: %w", err)
		}
		out[i] = chars[k.Int64()]
	}
	return string(out), nil
}

// Fingerprint identifies a secret's data without revealing it: the
// HMAC-SHA256, keyed with the rotation id, of the data's canonical JSON
// (object keys sorted). A rotation notes it before writing, so that a rerun
// recognises its own write.
func Fingerprint(rotation string, data map[string]any) string {
	b, err := json.Marshal(data) // encoding/json sorts map keys
	if err != nil {
		b = []byte(fmt.Sprint(data))
	}
	m := hmac.New(sha256.New, []byte("kir rotation "+rotation))
	m.Write(b)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}
