package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

const (
	// nodeReadyTimeout bounds AddNode's wait for kwok.
	nodeReadyTimeout = 30 * time.Second
	// serviceAccountTimeout bounds Namespace's wait for the controller-manager.
	serviceAccountTimeout = 30 * time.Second
	// tokenLifetime is the lifetime ServiceAccountConfig asks for.
	tokenLifetime = time.Hour
)

// AddNode creates a Node that kwok plays the kubelet for and waits until it
// is Ready and free of the node lifecycle controller's not-ready taints, so
// that pods schedule onto it at once. An existing node of that name is
// waited for, not recreated.
//
// The node has no taint of its own: every pod may land on it. Tests that
// need pods on a given node select it by the kubernetes.io/hostname label.
func (c *Cluster) AddNode(ctx context.Context, name string) (*corev1.Node, error) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
	}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating node %s: %w", name, err)
	}
	var last *corev1.Node
	err = Eventually(ctx, nodeReadyTimeout, func(ctx context.Context) (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("getting node %s: %w", name, err)
		}
		last = n
		return nodeReady(n), nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for node %s to be ready (last seen: %s): %w", name, describeNode(last), err)
	}
	return last, nil
}

func nodeReady(n *corev1.Node) bool {
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	for _, t := range n.Spec.Taints {
		// node.kubernetes.io/not-ready and friends, set by the
		// controller-manager until it has seen the node Ready.
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			return false
		}
	}
	return ready && !n.Spec.Unschedulable
}

func describeNode(n *corev1.Node) string {
	if n == nil {
		return "never"
	}
	var conds []string
	for _, c := range n.Status.Conditions {
		conds = append(conds, string(c.Type)+"="+string(c.Status))
	}
	var taints []string
	for _, t := range n.Spec.Taints {
		taints = append(taints, t.ToString())
	}
	return fmt.Sprintf("conditions [%s], taints [%s]", strings.Join(conds, " "), strings.Join(taints, " "))
}

// Namespace creates a namespace named prefix-<random> and waits until its
// "default" ServiceAccount exists, without which pods are rejected.
func (c *Cluster) Namespace(ctx context.Context, prefix string) (string, error) {
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("creating namespace %s-*: %w", prefix, err)
	}
	if c.noControllerManager {
		_, err := c.Client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("creating default service account in %s: %w", ns.Name, err)
		}
		return ns.Name, nil
	}
	err = Eventually(ctx, serviceAccountTimeout, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("getting default service account: %w", err)
		}
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("waiting for the default service account of %s: %w", ns.Name, err)
	}
	return ns.Name, nil
}

// ServiceAccountConfig returns a config that authenticates as the existing
// service account namespace/name, with a token from the TokenRequest API
// valid for an hour.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	seconds := int64(tokenLifetime / time.Second)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for service account %s/%s: %w", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// csrTimeout bounds ClientCertConfig's wait for the controller-manager to
// sign.
const csrTimeout = 60 * time.Second

// ClientCertConfig returns a config that authenticates as user name with a
// client certificate the cluster's client CA signed (through a
// CertificateSigningRequest the controller-manager signs), as an
// administrator handing out kubeconfigs does. The key is in KeyData.
func (c *Cluster) ClientCertConfig(ctx context.Context, name string) (*rest.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, err
	}
	csrs := c.Client.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kubetest-" + name + "-"},
		Spec: certv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certv1.KubeAPIServerClientSignerName, Usages: []certv1.KeyUsage{certv1.UsageClientAuth},
			ExpirationSeconds: ptr.To(int32(tokenLifetime / time.Second)),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a certificate for %s: %w", name, err)
	}
	// Once issued, the request is of no more use.
	defer func() { _ = csrs.Delete(context.WithoutCancel(ctx), csr.Name, metav1.DeleteOptions{}) }()
	csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test"})
	if _, err := csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("approving the certificate of %s: %w", name, err)
	}
	var certPEM []byte
	err = Eventually(ctx, csrTimeout, func(ctx context.Context) (bool, error) {
		got, err := csrs.Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		certPEM = got.Status.Certificate
		return len(certPEM) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the certificate of %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.CertData, cfg.KeyData = certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return cfg, nil
}
