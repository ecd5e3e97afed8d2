package rotate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kir.dev/kir/action"
)

// KubeconfigParams are rotate.issue-kubeconfig's parameters.
type KubeconfigParams struct {
	SecretParams
	ServiceAccount string          `json:"serviceAccount" kir:"required" doc:"NAMESPACE/NAME of the ServiceAccount the kubeconfig authenticates as."`
	TTL            action.Duration `json:"ttl,omitempty" doc:"Lifetime of the kubeconfig's token (default 8h; the API server may shorten it)."`
}

// DefaultKubeconfigTTL is the lifetime asked for a kubeconfig's token.
const DefaultKubeconfigTTL = 8 * time.Hour

// Validate checks the parameters without I/O.
func (p KubeconfigParams) Validate() error {
	errs := []error{p.validate()}
	if ns, name, ok := strings.Cut(p.ServiceAccount, "/"); !ok || ns == "" || name == "" {
		errs = append(errs, fmt.Errorf("serviceAccount %q: want NAMESPACE/NAME", p.ServiceAccount))
	}
	if p.TTL < 0 || (p.TTL > 0 && time.Duration(p.TTL) < 10*time.Minute) {
		errs = append(errs, fmt.Errorf("ttl %s: the API server accepts 10m or more", time.Duration(p.TTL)))
	}
	return errors.Join(errs...)
}

// IssueKubeconfig issues a short-lived token for a ServiceAccount with the
// TokenRequest API, builds a kubeconfig around it and writes it to a
// secret store as rotate.issue-secret writes a value (key "kubeconfig" of
// a Vault secret unless the reference names one; created if missing). The
// kubeconfig is never printed; earlier tokens stay valid until they
// expire, unless the ServiceAccount is rotated too.
func (s Stores) IssueKubeconfig(ctx context.Context, env action.Env, p KubeconfigParams) (action.Result, error) {
	ref, _ := ParseRef(p.Ref)
	if ref.Store == StoreVault && ref.Key == "" {
		ref.Key = "kubeconfig"
	}
	ns, name, _ := strings.Cut(p.ServiceAccount, "/")
	ttl := time.Duration(p.TTL)
	if ttl == 0 {
		ttl = DefaultKubeconfigTTL
	}
	newValue := func(string) (string, error) {
		if env.Cluster == "" {
			return "", errors.New("issuing a kubeconfig: the API server's address is unknown")
		}
		secs := int64(ttl / time.Second)
		tr, err := env.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &secs},
		}, metav1.CreateOptions{DryRun: env.DryRun.Opts()})
		if err != nil {
			return "", fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", ns, name, err)
		}
		return kubeconfigFor(env.Cluster, env.ClusterCA, ns, name, tr.Status.Token)
	}
	if !env.DryRun.Writes() {
		newValue = func(string) (string, error) { return "(not issued: client dry run)", nil }
	}
	res, err := s.issue(ctx, env, ref, p.SecretParams, true, newValues{of: newValue})
	if err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, fmt.Sprintf("tokens issued for ServiceAccount %s/%s before this one stay valid until they expire; `kir rotate serviceaccount %s/%s` revokes them", ns, name, ns, name))
	return res, nil
}

// kubeconfigFor returns a kubeconfig that authenticates as a ServiceAccount
// with token.
func kubeconfigFor(server string, ca []byte, ns, name, token string) (string, error) {
	return kubeconfig(server, ca, "system:serviceaccount:"+ns+":"+name, ns, &clientcmdapi.AuthInfo{Token: token})
}

// kubeconfig returns a kubeconfig whose one context authenticates as user
// with auth, in namespace ns ("" for none).
func kubeconfig(server string, ca []byte, user, ns string, auth *clientcmdapi.AuthInfo) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = auth
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: user, Namespace: ns}
	cfg.CurrentContext = user
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return "", errors.New("encoding the kubeconfig failed") // never the credential
	}
	return string(b), nil
}
