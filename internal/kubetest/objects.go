package kubetest

import (
	"context"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
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
