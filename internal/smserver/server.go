package smserver

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	contentType  = "application/x-amz-json-1.1"
	targetPrefix = "secretsmanager."
	// maxBody bounds a request body; AWS's own limit on a secret value is
	// 64 KiB, so a megabyte leaves room for base64 and the other members.
	maxBody = 1 << 20
)

// Server is an in-memory Secrets Manager. It is an http.Handler, safe for
// concurrent use; serve it with httptest.NewServer and point the SDK's
// BaseEndpoint at the test server's URL.
type Server struct {
	region, account string
	now             func() time.Time

	mu      sync.Mutex
	secrets map[string]*secret // by name, live or scheduled for deletion
	faults  map[string][]*APIError
	calls   map[string]int
}

var _ http.Handler = (*Server)(nil)

// Option configures a Server.
type Option func(*Server)

// WithRegion sets the region in the ARNs the server gives secrets
// (default us-east-1).
func WithRegion(region string) Option { return func(s *Server) { s.region = region } }

// WithAccountID sets the account in the ARNs the server gives secrets
// (default 123456789012).
func WithAccountID(id string) Option { return func(s *Server) { s.account = id } }

// WithClock sets where the server takes the time for the dates it reports
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New returns an empty server.
func New(opts ...Option) *Server {
	s := &Server{
		region:  "us-east-1",
		account: "123456789012",
		now:     time.Now,
		secrets: make(map[string]*secret),
		faults:  make(map[string][]*APIError),
		calls:   make(map[string]int),
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// handler runs one operation on a request body.
type handler func(s *Server, body []byte) (any, *APIError)

// operation returns the handler of the named operation.
func operation(name string) (handler, bool) {
	switch name {
	case "CreateSecret":
		return handle((*Server).createSecret), true
	case "PutSecretValue":
		return handle((*Server).putSecretValue), true
	case "GetSecretValue":
		return handle((*Server).getSecretValue), true
	case "DescribeSecret":
		return handle((*Server).describeSecret), true
	case "ListSecretVersionIds":
		return handle((*Server).listSecretVersionIds), true
	case "UpdateSecretVersionStage":
		return handle((*Server).updateSecretVersionStage), true
	case "DeleteSecret":
		return handle((*Server).deleteSecret), true
	case "RestoreSecret":
		return handle((*Server).restoreSecret), true
	}
	return nil, false
}

// handle turns an operation method into a handler that decodes its input
// strictly and runs it under the server's lock.
func handle[In, Out any](op func(*Server, *In) (*Out, *APIError)) handler {
	return func(s *Server, body []byte) (any, *APIError) {
		var in In
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				// encoding/json's messages name fields and types, never
				// the values, so no secret leaks into them.
				return nil, errorf(CodeSerialization, "decoding request: %v", err)
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		out, apiErr := op(s, &in)
		if apiErr != nil {
			return nil, apiErr
		}
		return out, nil
	}
}

// ServeHTTP answers one Secrets Manager call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &APIError{Code: CodeUnknownOperation, Message: "Secrets Manager takes POST requests only", StatusCode: http.StatusMethodNotAllowed})
		return
	}
	name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	op, known := operation(name)
	if !ok || !known {
		writeError(w, errorf(CodeUnknownOperation, "unknown operation %q", r.Header.Get("X-Amz-Target")))
		return
	}
	s.count(name)
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != contentType {
		writeError(w, errorf(CodeSerialization, "Content-Type must be %s", contentType))
		return
	}
	if fault := s.takeFault(name); fault != nil {
		writeError(w, fault)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, errorf(CodeSerialization, "reading request: %v", err))
		return
	}
	out, apiErr := op(s, body)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	buf, err := json.Marshal(out)
	if err != nil {
		writeError(w, errorf(CodeInternalServiceError, "encoding response: %v", err))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", newUUID())
	_, _ = w.Write(buf)
}

// writeError answers as AWS does: the code in both the X-Amzn-ErrorType
// header and the body's __type, either of which the SDK reads.
func writeError(w http.ResponseWriter, e *APIError) {
	buf, _ := json.Marshal(errorBody{Type: e.Code, Message: e.Message})
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.Header().Set("X-Amzn-RequestId", newUUID())
	w.WriteHeader(e.status())
	_, _ = w.Write(buf)
}

// Fail makes the next call of the operation op (such as "PutSecretValue")
// answer with err instead of running; calling it again queues further
// failures, answered one call each. An *APIError is answered as it is; any
// other error as an InternalServiceError with its text. The SDK retries an
// InternalServiceError (it is a 500), so queue one per attempt to make a
// call fail for good. Fail panics on a nil error or an operation the server
// does not implement, which would otherwise make a test pass vacuously.
func (s *Server) Fail(op string, err error) {
	if err == nil {
		panic("smserver: Fail called with a nil error")
	}
	if _, ok := operation(op); !ok {
		panic(fmt.Sprintf("smserver: Fail: unknown operation %q", op))
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		apiErr = &APIError{Code: CodeInternalServiceError, Message: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], apiErr)
}

func (s *Server) takeFault(op string) *APIError {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[op]
	if len(q) == 0 {
		return nil
	}
	s.faults[op] = q[1:]
	return q[0]
}

// Calls returns how many requests each operation has received, failed
// ones and those answered by Fail included, keyed by operation name.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

func (s *Server) count(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
}

// newUUID returns a random (version 4) UUID, the form of the VersionIds
// the SDK generates.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// arnSuffix returns the six random characters AWS appends to a secret's
// name in its ARN.
func arnSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
