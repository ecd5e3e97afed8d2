package rotate_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/internal/kubetest"
)

// The real control plane (etcd, kube-apiserver, controller-manager,
// scheduler, kwok), started by the first test that needs it: the tests of
// Vault and Secrets Manager rotation run without it.
var (
	clusterOnce sync.Once
	cluster     *kubetest.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv(asKirEnv) == "1" {
		// The test binary as the kir binary, for tests that run (and
		// kill) a real kir process.
		os.Exit(cli.Run(context.Background(), append([]string{"kir"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	code := m.Run()
	if vaultSrv != nil {
		vaultSrv.Stop()
	}
	if cluster != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "control plane logs:\n%s\n", cluster.Logs())
		}
		cluster.Stop()
	}
	os.Exit(code)
}

// controlPlane returns the test control plane, starting it once.
func controlPlane(t *testing.T) *kubetest.Cluster {
	t.Helper()
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cluster, clusterErr = kubetest.Start(ctx, kubetest.Options{})
	})
	if clusterErr != nil {
		t.Fatalf("starting the test control plane: %v", clusterErr)
	}
	return cluster
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

// node gives a test its own kwok node, on which its pods run.
func node(t *testing.T, c *kubetest.Cluster, ns string) string {
	t.Helper()
	name := "kir-test-" + ns
	if _, err := c.AddNode(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return name
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
