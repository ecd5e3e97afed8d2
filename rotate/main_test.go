package rotate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kir.dev/kir/internal/kubetest"
)

// The real control plane (etcd, kube-apiserver, controller-manager,
// scheduler, kwok), started by the first test that needs it: the tests of
// parameters run without it.
var shared kubetest.Shared

func TestMain(m *testing.M) { shared.Main(m) }

// controlPlane returns the test control plane, starting it once.
func controlPlane(t *testing.T) *kubetest.Cluster {
	t.Helper()
	return shared.Get(t)
}

// vaultServer returns the Vault server the tests share
// (kubetest.SharedVault) and a root client of it. Tests use paths of their
// own.
func vaultServer(t *testing.T) (*kubetest.Vault, *vault.Client) {
	t.Helper()
	v := kubetest.SharedVault(t)
	return v, v.Client(t)
}

// vaultData reads a Vault secret's current version and data.
func vaultData(t *testing.T, c *vault.Client, mount, path string) (int, map[string]any) {
	t.Helper()
	s, err := c.KVv2(mount).Get(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s.VersionMetadata.Version, s.Data
}

// noLeak fails the test if any planted value appears in any file under
// dirs.
func noLeak(t *testing.T, planted []string, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, p := range planted {
				if p != "" && strings.Contains(string(b), p) {
					t.Errorf("a secret value appears in %s", path)
				}
			}
			return nil
		})
	}
}

// namespace gives a test its own namespace.
func namespace(t *testing.T, c *kubetest.Cluster) string {
	t.Helper()
	ns, err := c.Namespace(t.Context(), "rotate")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// waitPods waits until exactly n pods matching sel run in ns, and returns
// them.
func waitPods(t *testing.T, c *kubetest.Cluster, ns, sel string, n int) []corev1.Pod {
	t.Helper()
	pods, err := kubetest.WaitRunningPods(t.Context(), c.Client, ns, sel, n)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// configWithRules returns a config that acts as a new ServiceAccount ns/name
// granted exactly rules, cluster-wide: what kir runs with when its
// ClusterRole is built from the rules an action declares.
func configWithRules(t *testing.T, c *kubetest.Cluster, ns, name string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	ctx := t.Context()
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rbac, global := c.Client.RbacV1(), ns+"-"+name
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: global}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: global},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: global},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // the test's is done
		_ = rbac.ClusterRoleBindings().Delete(ctx, global, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, global, metav1.DeleteOptions{})
	})
	cfg, err := c.ServiceAccountConfig(ctx, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clientWithRules is configWithRules' client.
func clientWithRules(t *testing.T, c *kubetest.Cluster, ns, name string, rules []rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(configWithRules(t, c, ns, name, rules))
	if err != nil {
		t.Fatal(err)
	}
	return client
}
