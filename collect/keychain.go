package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PullSecretKeychain reads the named image pull Secrets of namespace
// (kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg) and returns
// a keychain that authenticates to the registries they name, as the
// kubelet would for a pod that lists them in imagePullSecrets. It needs
// PullSecretRules. A key may be a host ("registry.example:5000"), a host
// and repository prefix ("registry.example/team"), a URL
// ("https://index.docker.io/v1/"), or a wildcard host ("*.example.com",
// each * one DNS label); the most specific key wins.
//
// The credentials live in the keychain only: errors name secrets and keys,
// never values.
func PullSecretKeychain(ctx context.Context, client kubernetes.Interface, namespace string, secrets []string) (authn.Keychain, error) {
	kc := pullSecretKeychain{}
	var errs []error
	for _, s := range secrets {
		sec, err := client.CoreV1().Secrets(namespace).Get(ctx, s, metav1.GetOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("reading image pull secret %s/%s: %w", namespace, s, err))
			continue
		}
		if err := kc.add(sec); err != nil {
			errs = append(errs, err)
		}
	}
	if len(kc) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return kc, errors.Join(errs...)
}

// pullSecretKeychain maps each normalised registry key to its credentials.
type pullSecretKeychain map[string]authn.AuthConfig

func (kc pullSecretKeychain) add(s *corev1.Secret) error {
	var auths map[string]authn.AuthConfig
	var raw []byte
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		raw = s.Data[corev1.DockerConfigJsonKey]
		var cfg struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return invalidPullSecret(s, corev1.DockerConfigJsonKey, err)
		}
		auths = cfg.Auths
	case corev1.SecretTypeDockercfg:
		raw = s.Data[corev1.DockerConfigKey]
		if err := json.Unmarshal(raw, &auths); err != nil {
			return invalidPullSecret(s, corev1.DockerConfigKey, err)
		}
	default:
		return fmt.Errorf("image pull secret %s/%s is of type %s, not %s or %s", s.Namespace, s.Name, s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
	}
	for k, v := range auths {
		k = normaliseRegistryKey(k)
		// The first secret listed wins, as with the kubelet.
		if _, ok := kc[k]; !ok {
			kc[k] = v
		}
	}
	return nil
}

// invalidPullSecret reports an undecodable pull secret without the
// decoder's message, which may quote the secret's bytes.
func invalidPullSecret(s *corev1.Secret, key string, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("image pull secret %s/%s: %s is not valid JSON (at byte %d)", s.Namespace, s.Name, key, syn.Offset)
	}
	return fmt.Errorf("image pull secret %s/%s: %s does not hold registry credentials", s.Namespace, s.Name, key)
}

// normaliseRegistryKey turns a docker config key into host[/path]:
// without scheme, without Docker Hub's /v1/ or /v2/ suffix, lower case
// host; Docker Hub's aliases become index.docker.io.
func normaliseRegistryKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	k = strings.TrimSuffix(strings.TrimSuffix(k, "/v1"), "/v2")
	host, rest, _ := strings.Cut(k, "/")
	host = strings.ToLower(host)
	if host == "docker.io" || host == "registry-1.docker.io" {
		host = name.DefaultRegistry
	}
	if rest == "" {
		return host
	}
	return host + "/" + rest
}

// Resolve implements authn.Keychain.
func (kc pullSecretKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	want := target.String() // registry[/repository]
	best, bestLen := authn.AuthConfig{}, -1
	for k, v := range kc {
		if registryKeyMatches(k, want) && len(k) > bestLen {
			best, bestLen = v, len(k)
		}
	}
	if bestLen < 0 {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(best), nil
}

// registryKeyMatches reports whether the key host[/path] covers target
// registry[/repository]: same host (a * in the key matching one label),
// and a path that is the repository or one of its parents.
func registryKeyMatches(key, target string) bool {
	kHost, kPath, _ := strings.Cut(key, "/")
	tHost, tPath, _ := strings.Cut(target, "/")
	tHost = strings.ToLower(tHost)
	if !hostMatches(kHost, tHost) {
		return false
	}
	return kPath == "" || tPath == kPath || strings.HasPrefix(tPath, kPath+"/")
}

func hostMatches(pattern, host string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == host
	}
	pLabels, hLabels := strings.Split(pattern, "."), strings.Split(host, ".")
	if len(pLabels) != len(hLabels) {
		return false
	}
	for i := range pLabels {
		if ok, err := path.Match(pLabels[i], hLabels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
