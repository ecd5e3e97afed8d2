package kube

import (
	"context"
	"fmt"
	"os"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options say how to reach the cluster.
type Options struct {
	// Kubeconfig is an explicit kubeconfig path; empty means KUBECONFIG,
	// then ~/.kube/config, then the in-cluster config.
	Kubeconfig string
	// Context overrides the kubeconfig's current context.
	Context string
	// QPS and Burst bound client-side request rates. client-go's 5/10
	// defaults would make containing 1,000 pods take minutes.
	QPS   float32
	Burst int
	// Timeout bounds each request.
	Timeout time.Duration
}

// Defaults used when Options leave them zero.
const (
	DefaultQPS     = 2000
	DefaultBurst   = 4000
	DefaultTimeout = 30 * time.Second
)

// Client is a connected client with the namespace the kubeconfig selects.
type Client struct {
	Config    *rest.Config
	Interface kubernetes.Interface
	// Namespace is the kubeconfig context's namespace, or "default".
	Namespace string
}

// New builds a client. It does not contact the server.
func New(o Options) (*Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = o.QPS, o.Burst, o.Timeout
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.UserAgent = "kir"
	// Protobuf costs the API server and kir a fraction of JSON's CPU for
	// built-in types; server-side apply bodies stay YAML, and the dynamic
	// client (custom resources) sets JSON for itself.
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	// Evidence cites the Audit-Id of the request that read it.
	cfg.Wrap(AuditIDTransport)
	// kir serve's background work yields to isolation (WithYield).
	cfg.Wrap(YieldTransport)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	return &Client{Config: cfg, Interface: cs, Namespace: ns}, nil
}

// CA returns the PEM bundle the client verifies the API server with, or
// nil when it uses the system roots.
func (c *Client) CA() []byte {
	if len(c.Config.CAData) > 0 {
		return c.Config.CAData
	}
	if c.Config.CAFile != "" {
		if b, err := os.ReadFile(c.Config.CAFile); err == nil {
			return b
		}
	}
	return nil
}

// WhoAmI returns the user name the API server authenticates kir as, with a
// SelfSubjectReview (what `kubectl auth whoami` does).
func WhoAmI(ctx context.Context, c kubernetes.Interface) (authnv1.UserInfo, error) {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authnv1.UserInfo{}, fmt.Errorf("asking the API server who kir acts as: %w", err)
	}
	return r.Status.UserInfo, nil
}
