package kube

import (
	"context"
	"net/http"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

type yieldKey struct{}

// WithYield returns a context whose API requests each call wait first, on
// a client built with YieldTransport (kube.New's are). kir serve runs
// evidence collection this way: each of its requests waits while alerts
// are being taken in and pods isolated, so that the API server, on a small
// control plane, serves the isolation first. wait returns an error only
// when its context ends.
func WithYield(ctx context.Context, wait func(context.Context) error) context.Context {
	return context.WithValue(ctx, yieldKey{}, wait)
}

// YieldTransport wraps rt so that a request made with a context from
// WithYield waits for its turn first. It has the signature of a
// rest.Config WrapTransport.
func YieldTransport(rt http.RoundTripper) http.RoundTripper { return yieldTransport{next: rt} }

var _ utilnet.RoundTripperWrapper = yieldTransport{}

type yieldTransport struct{ next http.RoundTripper }

func (t yieldTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if wait, ok := req.Context().Value(yieldKey{}).(func(context.Context) error); ok {
		if err := wait(req.Context()); err != nil {
			return nil, err
		}
	}
	return t.next.RoundTrip(req)
}

// WrappedRoundTripper returns the transport YieldTransport wraps.
func (t yieldTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
