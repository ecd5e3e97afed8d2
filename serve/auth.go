package serve

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"kir.dev/kir/internal/hmacsig"
)

// The headers of the optional HMAC signature: Falcosidekick's webhook
// output can send custom headers, and a proxy in front of Falco can sign.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 over
	// timestamp + "." + body, keyed with the shared secret.
	HeaderSignature = hmacsig.HeaderSignature
	// HeaderTimestamp is the Unix time in seconds the sender signed at.
	HeaderTimestamp = hmacsig.HeaderTimestamp
)

// Auth decides who may post alerts. At least one of Token and ClientCAs
// must be set; HMAC is checked on top of either.
type Auth struct {
	// Token is the bearer token Falcosidekick sends in an Authorization
	// header (webhook.customheaders); compared in constant time.
	Token []byte
	// ClientCAs verify client certificates (mutual TLS: what Falco's own
	// http_output can do, since it sends no custom headers). A request
	// with a verified certificate needs no token.
	ClientCAs *x509.CertPool
	// HMACSecret, when set, requires HeaderSignature and HeaderTimestamp.
	HMACSecret []byte
	// HMACWindow bounds the timestamp's age (and future skew); a signature
	// seen within it is a replay. 0 means 5 minutes.
	HMACWindow time.Duration

	seenMu sync.Mutex
	seen   map[string]time.Time // signatures accepted within the window
}

// errUnauthorized is what a request without valid credentials gets; the
// reason is logged, not sent.
var errUnauthorized = errors.New("unauthorized")

// ReadSecretFile reads a token or HMAC secret file: surrounding
// whitespace (a trailing newline) is dropped; an empty secret is refused.
// Errors name the file, never its content.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("%s: a secret shorter than 16 bytes is too easy to guess", path)
	}
	return b, nil
}

// authenticate checks the credentials a request carries before its body
// is read. It returns why it refused, for the log.
func (a *Auth) authenticate(r *http.Request) (who string, err error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName, nil
	}
	// An empty token would match an empty bearer: it counts as no token.
	if len(a.Token) > 0 {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return "", fmt.Errorf("%w: no bearer token", errUnauthorized)
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), a.Token) != 1 {
			return "", fmt.Errorf("%w: wrong bearer token", errUnauthorized)
		}
		return "token", nil
	}
	return "", fmt.Errorf("%w: no client certificate", errUnauthorized)
}

// verifyHMAC checks the signature over the bounded body, before the body
// is parsed, and refuses replays within the window. The signature counts
// as seen from then on; forget undoes that for a request the server then
// turns away (503: retry later), so that its retry is no replay.
func (a *Auth) verifyHMAC(r *http.Request, body []byte, now time.Time) (forget func(), err error) {
	forget = func() {}
	if a.HMACSecret == nil {
		return forget, nil
	}
	window := a.HMACWindow
	if window <= 0 {
		window = 5 * time.Minute
	}
	gotRaw, err := hmacsig.Verify(a.HMACSecret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, now, window)
	if err != nil {
		return forget, fmt.Errorf("%w: %v", errUnauthorized, err)
	}
	// Replays are known by the decoded signature: hex decodes either
	// case, and the same signature in upper case must not pass as new.
	key := string(gotRaw)
	a.seenMu.Lock()
	defer a.seenMu.Unlock()
	if a.seen == nil {
		a.seen = map[string]time.Time{}
	}
	for s, t := range a.seen {
		if now.Sub(t) > 2*window {
			delete(a.seen, s)
		}
	}
	if _, dup := a.seen[key]; dup {
		return forget, fmt.Errorf("%w: replayed signature", errUnauthorized)
	}
	a.seen[key] = now
	return func() {
		a.seenMu.Lock()
		defer a.seenMu.Unlock()
		delete(a.seen, key)
	}, nil
}

// Sign is the HMAC a sender puts in HeaderSignature (hex, after
// "sha256="): HMAC-SHA256(secret, timestamp + "." + body).
func Sign(secret []byte, timestamp string, body []byte) []byte {
	return hmacsig.Sign(secret, timestamp, body)
}

// TLSConfig is the server's TLS: TLS 1.2 or later, its certificate, and
// when clientCAs is set, client certificates verified against it if given
// (a request without one must then carry the token). requireCert without
// clientCAs is an error: there would be nothing to require a certificate
// from, and the requirement would silently not hold.
func TLSConfig(certFile, keyFile string, clientCAs *x509.CertPool, requireCert bool) (*tls.Config, error) {
	if requireCert && clientCAs == nil {
		return nil, errors.New("requiring a client certificate needs the client certificate authorities to verify it")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the server certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if requireCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// LoadCAs reads a PEM bundle of CA certificates.
func LoadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
