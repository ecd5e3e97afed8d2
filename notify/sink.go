package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/internal/hmacsig"
)

// Sink is where messages are delivered.
type Sink interface {
	// Name identifies the sink; the outbox keeps its messages under it.
	Name() string
	// Wants reports whether events of kind k go to the sink.
	Wants(k Kind) bool
	// Send delivers m once, returning nil only when the receiver
	// acknowledged it. It returns by ctx's deadline at the latest, and
	// its errors never hold a secret (the URL of a Slack webhook).
	Send(ctx context.Context, m *Message) error
}

// maxResponse is how much of a response is read (and dropped) so that
// the connection can be reused.
const maxResponse = 64 << 10

// httpSink is what both sink types share: a URL that is treated as a
// secret, a client that follows no redirect (a 3xx would take the body
// and its signature elsewhere), and a timeout per attempt.
type httpSink struct {
	name    string
	url     string
	kinds   []Kind
	timeout time.Duration
	client  *http.Client
	// render makes the body and sets the headers of one attempt.
	render func(m *Message, h http.Header, now time.Time) ([]byte, error)
}

func (s *httpSink) Name() string { return s.name }

func (s *httpSink) Wants(k Kind) bool { return len(s.kinds) == 0 || slices.Contains(s.kinds, k) }

func (s *httpSink) Send(parent context.Context, m *Message) error {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, nil)
	if err != nil {
		return s.redact(fmt.Errorf("sink %s: building the request: %w", s.name, err))
	}
	body, err := s.render(m, req.Header, time.Now())
	if err != nil {
		return fmt.Errorf("sink %s: rendering message %s: %w", s.name, m.DeliveryID, err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kir-notify")
	resp, err := s.client.Do(req)
	if err != nil && parent.Err() == nil && ctx.Err() != nil {
		return fmt.Errorf("sink %s: no answer within %s", s.name, s.timeout)
	}
	if err != nil {
		return s.redact(fmt.Errorf("sink %s: %w", s.name, err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	// The response body is not reported: a receiver may echo what it got.
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("sink %s: HTTP %d", s.name, resp.StatusCode)
	}
	return nil
}

// redact takes the URL out of err: net/http puts it in every *url.Error,
// and a Slack webhook's URL is its credential.
func (s *httpSink) redact(err error) error {
	return &redactedError{msg: redactURL(err.Error(), s.url)}
}

// redactedError keeps only the redacted text: unwrapping would hand the
// *url.Error, and with it the URL, back to whoever prints it.
type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

func redactURL(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, "[url redacted]")
	if u, err := url.Parse(raw); err == nil {
		for _, part := range []string{u.EscapedPath(), u.Path, u.RawQuery, u.User.String()} {
			if len(part) > 1 {
				msg = strings.ReplaceAll(msg, part, "[redacted]")
			}
		}
	}
	return msg
}

func newClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// newSinks builds the sinks of c, reading their secret files. Errors name
// the field and the file, never what the file holds.
func newSinks(c *Config) ([]Sink, error) {
	var sinks []Sink
	var errs []error
	for i, sc := range c.Sinks {
		s, err := newSink(sc)
		if err != nil {
			errs = append(errs, fmt.Errorf("notifications.sinks[%d] (%s): %w", i, sc.Name, err))
			continue
		}
		sinks = append(sinks, s)
	}
	return sinks, errors.Join(errs...)
}

func newSink(sc SinkConfig) (Sink, error) {
	raw, err := readSecret(sc.URLFile, "urlFile", 1)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(string(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// url.Parse's error quotes the URL: say what is wrong without it.
		return nil, fmt.Errorf("urlFile %s: does not hold an absolute http(s) URL", sc.URLFile)
	}
	timeout := sc.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	s := &httpSink{name: sc.Name, url: u.String(), kinds: sc.Events, timeout: timeout, client: newClient(timeout)}
	switch sc.Type {
	case TypeSlack:
		s.render = renderSlack
	case TypeWebhook:
		key, err := readSecret(sc.KeyFile, "keyFile", 16)
		if err != nil {
			return nil, err
		}
		var token []byte
		if sc.TokenFile != "" {
			if token, err = readSecret(sc.TokenFile, "tokenFile", 16); err != nil {
				return nil, err
			}
		}
		s.render = webhookRenderer(key, token)
	default:
		return nil, fmt.Errorf("type %q is not a sink type", sc.Type)
	}
	return s, nil
}

// readSecret reads a secret file: surrounding whitespace dropped, at
// least min bytes. Errors name the field and file, never the content.
func readSecret(path, field string, min int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("%s %s is empty", field, path)
	case len(b) < min:
		return nil, fmt.Errorf("%s %s: a secret shorter than %d bytes is too easy to guess", field, path, min)
	}
	return b, nil
}

// webhookRenderer signs the JSON message as kir serve's intake verifies
// (hmacsig): a new timestamp and signature on each attempt, so that a
// retry is no replay to the receiver; the body and delivery id stay.
func webhookRenderer(key, token []byte) func(*Message, http.Header, time.Time) ([]byte, error) {
	return func(m *Message, h http.Header, now time.Time) ([]byte, error) {
		body, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		ts, sig := hmacsig.Header(key, now, body)
		h.Set(hmacsig.HeaderTimestamp, ts)
		h.Set(hmacsig.HeaderSignature, sig)
		h.Set(HeaderDelivery, m.DeliveryID)
		if token != nil {
			h.Set("Authorization", "Bearer "+string(token))
		}
		return body, nil
	}
}
