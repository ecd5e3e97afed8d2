package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// cluster is the cluster the tests of this package share; each test works
// in its own namespace.
var cluster *Cluster

// podLog is what kwok serves as the log of every pod of the shared cluster,
// through the ClusterLogs document given as Options.ExtraKwokConfig.
const podLog = "hello from kwok"

// previousPodLog is what kwok serves as the log of the previous instance
// of every container (?previous=true).
const previousPodLog = "goodbye from kwok"

// helperEnv makes the test binary a helper process that starts a cluster,
// prints its pids and waits to be killed.
const helperEnv = "KUBETEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	Main(m, &cluster, Options{
		ImageIDs: true,
		PodLogs: []PodLogs{{
			Log:      "2026-01-02T03:04:05.000000000Z stdout F " + podLog + "\n",
			Previous: "2026-01-02T03:00:00.000000000Z stderr F " + previousPodLog + "\n",
		}},
	})
}

// helperReport is what the helper process prints.
type helperReport struct {
	PIDs map[string]int
	Dir  string
}

// helper runs in a child test binary: see TestKilledParentKillsCluster.
func helper() int {
	c, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(helperReport{PIDs: c.pids(), Dir: c.Dir}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {} // until killed
}

func TestDeploymentRunsOnKwokNode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := cluster.NewFixture(t, "deploy", 3)
	running := 0
	for _, p := range f.Pods {
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == f.Node && p.Status.PodIP != "" {
			running++
		}
	}
	if running != 3 {
		t.Fatalf("want 3 running pods on %s, got %d: %+v\n%s", f.Node, running, f.Pods, cluster.Logs())
	}
	err := Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		d, err := cluster.Client.AppsV1().Deployments(f.Namespace).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 3, nil
	})
	if err != nil {
		t.Fatalf("deployment never reported 3 ready replicas: %v", err)
	}
}

func TestPodLogsServedByKwok(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := namespace(t, "logs")
	node, err := cluster.AddNode(ctx, ns+"-node")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "talker"},
		Spec: corev1.PodSpec{
			NodeName:   node.Name,
			Containers: []corev1.Container{{Name: "talker", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, "talker")
	// The apiserver proxies pods/log to kwok at the node's InternalIP.
	got, err := cluster.Client.CoreV1().Pods(ns).GetLogs("talker", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("getting logs: %v\n%s", err, cluster.Logs())
	}
	if strings.TrimSpace(string(got)) != podLog {
		t.Errorf("logs = %q, want %q", got, podLog)
	}
}

func TestNamespaceHasDefaultServiceAccount(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := namespace(t, "twice")
	b := namespace(t, "twice")
	if a == b || !strings.HasPrefix(a, "twice-") {
		t.Fatalf("namespaces %q and %q: want two distinct twice-* names", a, b)
	}
	for _, ns := range []string{a, b} {
		if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("default service account of %s: %v", ns, err)
		}
	}
}

func TestServiceAccountConfig(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := namespace(t, "sa")
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grantPodList(t, ns, "reader")

	cfg, err := cluster.ServiceAccountConfig(ctx, ns, "reader")
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "system:serviceaccount:" + ns + ":reader"
	if got := whoAmI(t, client); got != want {
		t.Errorf("authenticated as %q, want %q", got, want)
	}
	_, err = client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("listing pods cluster-wide: got %v, want forbidden", err)
	}
	// The Role's grant shows the token is not simply refused everything.
	err = Eventually(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			return false, nil // RBAC's informers have not seen the binding yet
		}
		return err == nil, err
	})
	if err != nil {
		t.Errorf("listing pods in %s with the role: %v", ns, err)
	}
}

func TestWriteKubeconfig(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := namespace(t, "kubeconfig")
	saConfig, err := cluster.ServiceAccountConfig(ctx, ns, "default")
	if err != nil {
		t.Fatal(err)
	}
	saPath := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := cluster.WriteKubeconfig(saPath, saConfig); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"admin", cluster.Kubeconfig, "kubetest-admin"},
		{"service account", saPath, "system:serviceaccount:" + ns + ":default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("mode %v, want 0600", perm)
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", tt.path)
			if err != nil {
				t.Fatal(err)
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := whoAmI(t, client); got != tt.want {
				t.Errorf("authenticated as %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	c, err := Start(t.Context(), Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	pids := c.pids()
	if len(pids) != 5 {
		t.Errorf("started %v, want 5 processes", pids)
	}
	began := time.Now()
	c.Stop()
	t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still running after Stop", name, pid)
		}
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s not removed: %v", c.Dir, err)
	}
	c.Stop() // a second Stop does nothing
	// Options.Log got every process's output, line by line.
	for name := range pids {
		if !strings.Contains(log.String(), "\n["+name+"] ") && !strings.HasPrefix(log.String(), "["+name+"] ") {
			t.Errorf("no line of %s in Options.Log", name)
		}
	}
}

func TestKilledParentKillsCluster(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var report helperReport
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &report)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("reading the helper's pids: %v\n%s", err, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pids := report.PIDs
	if len(pids) != 5 {
		t.Errorf("helper started %v, want 5 processes", pids)
	}
	err = Eventually(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		for _, pid := range pids {
			if alive(pid) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for name, pid := range pids {
			if alive(pid) {
				t.Errorf("%s (pid %d) survived its killed parent", name, pid)
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	}
	// Stop never ran: the next Start sweeps the directory.
	if _, err := os.Stat(report.Dir); err != nil {
		t.Fatalf("helper's Dir: %v", err)
	}
	sweepStale(filepath.Dir(report.Dir))
	if _, err := os.Stat(report.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s of the killed helper not swept: %v", report.Dir, err)
	}
}

func TestSweepStale(t *testing.T) {
	t.Parallel()
	// A pid no process has any more: that of a child already reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := gone.Process.Pid
	tmp := t.TempDir()
	dirs := map[string]bool{ // name: swept
		fmt.Sprintf("kubetest-%d-1", dead):        true,
		fmt.Sprintf("kubetest-%d-2", dead):        false, // kept on purpose
		fmt.Sprintf("kubetest-%d-3", os.Getpid()): false, // alive
		"kubetest-logs-4":                         false,
		fmt.Sprintf("other-%d-5", dead):           false,
	}
	for name := range dirs {
		if err := os.Mkdir(filepath.Join(tmp, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("kubetest-%d-2", dead), keepMarker), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sweepStale(tmp)
	for name, swept := range dirs {
		_, err := os.Stat(filepath.Join(tmp, name))
		if gotSwept := errors.Is(err, os.ErrNotExist); gotSwept != swept {
			t.Errorf("%s: swept %v, want %v (%v)", name, gotSwept, swept, err)
		}
	}
}

func TestStartWithoutBinariesFails(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KIR_TEST_BIN", dir)
	_, err := Start(t.Context(), Options{})
	if err == nil || !strings.Contains(err.Error(), "make testbin") || !strings.Contains(err.Error(), filepath.Join(dir, "kube-apiserver")) {
		t.Errorf("Start without binaries: got %v, want an error naming the missing kube-apiserver and make testbin", err)
	}
}

func TestStartReportsEarlyExit(t *testing.T) {
	t.Parallel()
	began := time.Now()
	c, err := Start(t.Context(), Options{APIServerFlags: []string{"--no-such-flag"}})
	if err == nil {
		c.Stop()
		t.Fatal("Start succeeded with a bad apiserver flag")
	}
	for _, want := range []string{"kube-apiserver exited (exit status 1)", "unknown flag: --no-such-flag", "----- etcd (", "----- kube-apiserver ("} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("Start took %s to notice the apiserver exited", d)
	}
}

func TestLostPortIsRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &Cluster{Dir: dir, launcher: newLauncher()}
	defer c.Stop()
	p, err := startProcess(c.launcher, dir, "fake", "/bin/sh",
		[]string{"-c", "echo 'listen tcp 127.0.0.1:1: bind: address already in use' >&2; exit 1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	err = c.waitHealthy(t.Context(), "fake", 10*time.Second, func(context.Context) error {
		return errors.New("not listening")
	})
	if !errors.Is(err, errPortTaken) {
		t.Errorf("got %v, want errPortTaken", err)
	}
}

func TestEventually(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		f       func(calls int) (bool, error)
		wantErr error
		calls   int
	}{
		{"at once", func(int) (bool, error) { return true, nil }, nil, 1},
		{"on the third call", func(n int) (bool, error) { return n == 3, nil }, nil, 3},
		{"error stops", func(int) (bool, error) { return false, errBoom }, errBoom, 1},
		{"timeout", func(int) (bool, error) { return false, nil }, context.DeadlineExceeded, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := Eventually(t.Context(), 300*time.Millisecond, func(context.Context) (bool, error) {
				calls++
				return tt.f(calls)
			})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.calls >= 0 && calls != tt.calls {
				t.Errorf("%d calls, want %d", calls, tt.calls)
			}
		})
	}
}

func TestKwokConfig(t *testing.T) {
	t.Parallel()
	extra := []byte("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: custom\n")
	conf, err := kwokConfig([][]byte{extra})
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(conf), "\n---\n")
	var names []string
	for _, d := range docs {
		for l := range strings.Lines(d) {
			if name, ok := strings.CutPrefix(l, "  name: "); ok {
				names = append(names, strings.TrimSpace(name))
				break
			}
		}
	}
	want := "node-initialize node-heartbeat pod-ready pod-complete pod-delete custom"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("documents %q, want %q", got, want)
	}
}

// namespace returns a fresh namespace, deleted when the test ends.
func namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := cluster.Namespace(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled during cleanup.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cluster.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
	return ns
}

func waitRunning(t *testing.T, ns, name string) {
	t.Helper()
	err := Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not running: %v", ns, name, err)
	}
}

func grantPodList(t *testing.T, ns, serviceAccount string) {
	t.Helper()
	ctx := t.Context()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-lister"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}
	if _, err := cluster.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-lister"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-lister"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: serviceAccount}},
	}
	if _, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func whoAmI(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	r, err := client.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	return r.Status.UserInfo.Username
}

// alive reports whether pid is a live process; a zombie, already dead but
// not yet reaped by its new parent, is not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
