// Package hmacsig is the HMAC-SHA256 signature of kir's signed HTTP
// requests: what kir serve's intake verifies on alerts it receives, and
// what kir's notifications carry, so that one kir can notify another.
//
// The signature is HMAC-SHA256(secret, timestamp + "." + body), sent hex
// encoded after "sha256=" in HeaderSignature, with the timestamp (Unix
// seconds) in HeaderTimestamp. Replay protection — refusing a signature
// seen before within the window — is the receiver's, not this package's.
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed request.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 over
	// timestamp + "." + body, keyed with the shared secret.
	HeaderSignature = "X-Kir-Signature"
	// HeaderTimestamp is the Unix time in seconds the sender signed at.
	HeaderTimestamp = "X-Kir-Timestamp"
)

// Sign returns HMAC-SHA256(secret, timestamp + "." + body).
func Sign(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Header returns the values of HeaderTimestamp and HeaderSignature for
// body signed at now.
func Header(secret []byte, now time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(now.Unix(), 10)
	return timestamp, "sha256=" + hex.EncodeToString(Sign(secret, timestamp, body))
}

// Verify checks the values of HeaderTimestamp and HeaderSignature against
// body: the timestamp within window of now (either way), the signature
// the HMAC of timestamp and body under secret. It returns the decoded
// signature, by which a receiver knows replays (hex decodes either case).
// Its errors say what is wrong, never the expected signature.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, window time.Duration) ([]byte, error) {
	if timestamp == "" || signature == "" {
		return nil, fmt.Errorf("%s and %s are required", HeaderSignature, HeaderTimestamp)
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s is not Unix seconds", HeaderTimestamp)
	}
	if age := now.Sub(time.Unix(secs, 0)); age > window || age < -window {
		return nil, fmt.Errorf("timestamp outside the %s window", window)
	}
	got, ok := strings.CutPrefix(signature, "sha256=")
	raw, err := hex.DecodeString(got)
	if !ok || err != nil {
		return nil, fmt.Errorf("%s is not sha256=<hex>", HeaderSignature)
	}
	if !hmac.Equal(raw, Sign(secret, timestamp, body)) {
		return nil, fmt.Errorf("bad signature")
	}
	return raw, nil
}
