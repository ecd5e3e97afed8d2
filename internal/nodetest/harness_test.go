package nodetest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"kir.dev/kir/internal/kubetest"
)

// serverScript answers each connection on port 8080 with a reply naming
// the line it read, and logs that line.
const serverScript = `nc -ll -p 8080 -e sh -c 'read line; echo "server got: $line" >&2; echo "reply to $line"'`

// waitTimeout bounds a wait for pods, logs and enforcement.
const waitTimeout = 60 * time.Second

// TestRealNodePodsTalk: two pods on the real node, one serving, the other
// connecting by pod IP; both sides of the exchange are in their logs, read
// through the API server (kubelet's log endpoint).
func TestRealNodePodsTalk(t *testing.T) {
	t.Parallel()
	c, node := realNode(t)
	ns := namespace(t, c)
	server := startPod(t, c, node, ns, "server", serverScript)
	_, cidr, err := net.ParseCIDR(node.PodCIDR)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(server.Status.PodIP); !cidr.Contains(ip) {
		t.Fatalf("server pod IP %q is not in the node's pod CIDR %s", server.Status.PodIP, node.PodCIDR)
	}
	startPod(t, c, node, ns, "client",
		fmt.Sprintf(`until echo hello-from-client | nc -w 2 %s 8080; do sleep 0.5; done; sleep 3600`, server.Status.PodIP))
	waitLog(t, c, ns, "client", "reply to hello-from-client")
	waitLog(t, c, ns, "server", "server got: hello-from-client")
}

// TestRealNodeKubeletReachableFromPod: a pod opens a connection to the
// node's kubelet port and sends a plain HTTP request, which kubelet's TLS
// server answers with 400: proof of a connection both ways. The isolation
// tests build on it. (busybox-static's wget crashes here, hence nc.)
func TestRealNodeKubeletReachableFromPod(t *testing.T) {
	t.Parallel()
	c, node := realNode(t)
	ns := namespace(t, c)
	startPod(t, c, node, ns, "probe",
		fmt.Sprintf(`printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 %s %d 2>&1; sleep 3600`, node.IP, kubetest.KubeletPort))
	waitLog(t, c, ns, "probe", "400 Bad Request")
}

// TestRealNodeEnforcesNetworkPolicy: a policy denying all ingress to the
// server makes a prober's new connections fail; once it is deleted they
// succeed again.
func TestRealNodeEnforcesNetworkPolicy(t *testing.T) {
	t.Parallel()
	c, node := realNode(t)
	ns := namespace(t, c)
	startServerAndProber(t, c, node, ns)
	policies := c.Client.NetworkingV1().NetworkPolicies(ns)
	if _, err := policies.Create(t.Context(), denyServerIngress(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLastAttempts(t, c, ns, "prober", "fail")

	if err := policies.Delete(t.Context(), denyServerIngress().Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLastAttempts(t, c, ns, "prober", "ok")
}

// TestRealNodeEnforcerStops: with kube-router stopped the stored deny
// policy no longer holds (what a cluster whose network plugin ignores
// NetworkPolicy looks like); started again, it holds again. Not parallel:
// no other test may run without the enforcer.
func TestRealNodeEnforcerStops(t *testing.T) {
	c, node := realNode(t)
	ns := namespace(t, c)
	startServerAndProber(t, c, node, ns)
	if _, err := c.Client.NetworkingV1().NetworkPolicies(ns).Create(t.Context(), denyServerIngress(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLastAttempts(t, c, ns, "prober", "fail")

	t.Cleanup(func() {
		if err := node.StartEnforcer(context.Background()); err != nil {
			t.Errorf("restarting the enforcer for the next tests: %v", err)
		}
	})
	if err := node.StopEnforcer(); err != nil {
		t.Fatal(err)
	}
	waitLastAttempts(t, c, ns, "prober", "ok")

	if err := node.StartEnforcer(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitLastAttempts(t, c, ns, "prober", "fail")
}

// startServerAndProber starts a server and a prober that opens a new
// connection to it every 200 ms, logging "attempt N ok" or "attempt N
// fail", and waits for the attempts to succeed.
func startServerAndProber(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, ns string) {
	t.Helper()
	server := startPod(t, c, node, ns, "server", serverScript)
	startPod(t, c, node, ns, "prober", fmt.Sprintf(`i=0; while true; do i=$((i+1))
if echo probe | nc -w 1 %s 8080 >/dev/null 2>&1; then echo "attempt $i ok"; else echo "attempt $i fail"; fi
sleep 0.2; done`, server.Status.PodIP))
	waitLastAttempts(t, c, ns, "prober", "ok")
}

// denyServerIngress denies all ingress to the pods labelled app=server.
func denyServerIngress() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-server-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

// namespace creates the test's namespace, deleted when it ends.
func namespace(t *testing.T, c *kubetest.Cluster) string {
	t.Helper()
	ns, err := c.Namespace(t.Context(), "node")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The context of a test that ended is cancelled.
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ns
}

// startPod runs script in a busybox pod, labelled app=name, on the real
// node, and returns it once Running.
func startPod(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, ns, name, script string) *corev1.Pod {
	t.Helper()
	return startPodWith(t, c, node, ns, name, script, nil)
}

// startPodWith is startPod with the pod changed by edit first.
func startPodWith(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, ns, name, script string, edit func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           node.BusyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", script},
			}},
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
		},
	}
	node.Pin(&pod.Spec)
	if edit != nil {
		edit(pod)
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods, err := kubetest.WaitRunningPods(t.Context(), c.Client, ns, "app="+name, 1)
	if err != nil {
		t.Fatalf("pod %s/%s on the real node: %v\n%s", ns, name, err, describePod(t, c, ns, name))
	}
	return &pods[0]
}

// describePod is the pod's status, for failure messages.
func describePod(t *testing.T, c *kubetest.Cluster, ns, name string) string {
	p, err := c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("phase %s (%s: %s), conditions %+v, container statuses %+v", p.Status.Phase, p.Status.Reason, p.Status.Message, p.Status.Conditions, p.Status.ContainerStatuses)
}

// podLogs reads a pod's log through the API server; tail < 0 reads it all.
func podLogs(ctx context.Context, c *kubetest.Cluster, ns, name string, tail int64) (string, error) {
	opts := &corev1.PodLogOptions{}
	if tail >= 0 {
		opts.TailLines = &tail
	}
	b, err := c.Client.CoreV1().Pods(ns).GetLogs(name, opts).DoRaw(ctx)
	return string(b), err
}

// waitLog waits until the pod's log holds want.
func waitLog(t *testing.T, c *kubetest.Cluster, ns, name, want string) {
	t.Helper()
	var last string
	err := kubetest.Eventually(t.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		var err error
		last, err = podLogs(ctx, c, ns, name, -1)
		return err == nil && strings.Contains(last, want), nil
	})
	if err != nil {
		t.Fatalf("log of %s/%s never held %q: %v; log:\n%s", ns, name, want, err, last)
	}
}

// waitLastAttempts waits until the prober's last three attempts all ended
// with result ("ok" or "fail").
func waitLastAttempts(t *testing.T, c *kubetest.Cluster, ns, name, result string) {
	t.Helper()
	var last string
	began := time.Now()
	err := kubetest.Eventually(t.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		var err error
		if last, err = podLogs(ctx, c, ns, name, 3); err != nil {
			return false, nil
		}
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(last), "\n") {
			if strings.HasSuffix(l, " "+result) {
				n++
			}
		}
		return n == 3, nil
	})
	if err != nil {
		t.Fatalf("%s/%s: the last three connection attempts never all ended %q: %v; last lines:\n%s", ns, name, result, err, last)
	}
	t.Logf("%s/%s: three attempts in a row %s, %s after asking", ns, name, result, time.Since(began).Round(10*time.Millisecond))
}
