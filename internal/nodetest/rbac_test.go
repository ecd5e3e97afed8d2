package nodetest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"kir.dev/kir/internal/kubetest"
)

// agentRules are the node agent's rules as deploy/ ships them: its
// ClusterRole's and its Role's (in kir's namespace).
func agentRules(t *testing.T) (cluster, namespaced []rbacv1.PolicyRule) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "components", "node-agent", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("deploy/components/node-agent/rbac.yaml: %v", err)
		}
		switch obj.Kind {
		case "ClusterRole":
			cluster = obj.Rules
		case "Role":
			namespaced = obj.Rules
		}
	}
	if cluster == nil || namespaced == nil {
		t.Fatal("deploy/components/node-agent/rbac.yaml: want a ClusterRole and a Role")
	}
	return cluster, namespaced
}

// agentKubeconfig is a kubeconfig of a ServiceAccount holding exactly the
// node agent's shipped RBAC, its Role in kirNS: the agent in these tests
// runs with what a cluster would give it, no more.
func agentKubeconfig(t *testing.T, c *kubetest.Cluster, kirNS string) string {
	t.Helper()
	ctx := t.Context()
	clusterRules, rules := agentRules(t)
	name := "kir-node-agent-" + kirNS
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kir-node-agent"}}
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: kirNS}}
	rbac := c.Client.RbacV1()
	steps := []func() error{
		func() error {
			_, err := c.Client.CoreV1().ServiceAccounts(kirNS).Create(ctx, sa, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: clusterRules}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := rbac.Roles(kirNS).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "kir-node-agent"}, Rules: rules}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := rbac.RoleBindings(kirNS).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kir-node-agent"}, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "kir-node-agent"}}, metav1.CreateOptions{})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	cfg, err := c.ServiceAccountConfig(ctx, kirNS, sa.Name)
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := c.WriteKubeconfig(kc, cfg); err != nil {
		t.Fatal(err)
	}
	return kc
}

// agentPod runs the agent's stand-in pod on the node: hostNetwork, as the
// DaemonSet's, running pause (the agent itself runs as a process of the
// test, on the same host). It gives the API server the address to proxy
// to, and kir the pod to check runs on the node.
func agentPod(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, kirNS string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kir-node-agent", Labels: map[string]string{"app": "kir-node-agent"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{
				Name: "agent", Image: node.PauseImage, ImagePullPolicy: corev1.PullNever,
			}},
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
		},
	}
	node.Pin(&pod.Spec)
	if _, err := c.Client.CoreV1().Pods(kirNS).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kubetest.WaitRunningPods(t.Context(), c.Client, kirNS, "app=kir-node-agent", 1); err != nil {
		t.Fatalf("the agent's pod on the real node: %v\n%s", err, describePod(t, c, kirNS, pod.Name))
	}
	return pod.Name
}

// freePort is a TCP port free on the host now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
