package kube

import (
	"context"
	"net/http"
	"sync"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// AuditIDHeader is the response header in which the API server returns the
// audit ID of a request: the key of that request in the server's audit log.
const AuditIDHeader = "Audit-Id"

// auditSlotKey keys the capture slot of CaptureAuditID in a context.
type auditSlotKey struct{}

// auditSlot holds the audit ID of the last response seen under a context.
// A mutex, not a plain field: client-go may retry a request, and one
// context may carry several concurrent requests.
type auditSlot struct {
	mu sync.Mutex
	id string
}

func (s *auditSlot) set(id string) {
	s.mu.Lock()
	s.id = id
	s.mu.Unlock()
}

func (s *auditSlot) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// CaptureAuditID returns a context that records the Audit-Id the API server
// returns for requests made with it, and a function that returns the last
// one recorded ("" when none was: no response yet, a client built without
// AuditIDTransport, or a server that sends no Audit-Id). Evidence cites the
// ID so an auditor can find the read in the API server's audit log:
//
//	ctx, auditID := kube.CaptureAuditID(ctx)
//	pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
//	id := auditID()
func CaptureAuditID(ctx context.Context) (context.Context, func() string) {
	s := &auditSlot{}
	return context.WithValue(ctx, auditSlotKey{}, s), s.get
}

// AuditIDTransport wraps rt so that the Audit-Id header of each response is
// stored in the request context's capture slot, if it has one (see
// CaptureAuditID). It has the signature of a rest.Config WrapTransport and
// is installed with cfg.Wrap(AuditIDTransport), which chains it after any
// wrapper already there.
func AuditIDTransport(rt http.RoundTripper) http.RoundTripper {
	return auditIDTransport{next: rt}
}

var _ utilnet.RoundTripperWrapper = auditIDTransport{}

type auditIDTransport struct {
	next http.RoundTripper
}

func (t auditIDTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if resp != nil {
		if s, ok := req.Context().Value(auditSlotKey{}).(*auditSlot); ok {
			if id := resp.Header.Get(AuditIDHeader); id != "" {
				s.set(id)
			}
		}
	}
	return resp, err
}

// WrappedRoundTripper returns the transport AuditIDTransport wraps, so that
// client-go's transport inspection (utilnet.CloseIdleConnectionsFor, debug
// wrappers) can see through it.
func (t auditIDTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
