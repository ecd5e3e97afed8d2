package contain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"

	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/kubetest"
)

// benchPods creates n bare pods labelled app=bench on the fixture's node
// and waits until kwok reports them Running.
func benchPods(b *testing.B, f *fixture, n int) {
	b.Helper()
	ctx := b.Context()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%04d", i), Namespace: f.ns, Labels: map[string]string{"app": "bench"}},
				Spec: corev1.PodSpec{
					NodeName:   f.node,
					Containers: []corev1.Container{{Name: "c", Image: "registry.example/bench:1"}},
				},
			}
			if _, err := cluster.Client.CoreV1().Pods(f.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	err := kubetest.Eventually(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == n, nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func benchFixture(b *testing.B) *fixture {
	b.Helper()
	ns, err := cluster.Namespace(b.Context(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	node := fmt.Sprintf("kir-bench-node-%d", seq.Add(1))
	if _, err := cluster.AddNode(b.Context(), node); err != nil {
		b.Fatal(err)
	}
	return &fixture{ns: ns, node: node}
}

func runKir(b *testing.B, args ...string) {
	b.Helper()
	argv := append(append([]string{"kir"}, args...), "--kubeconfig", cluster.Kubeconfig)
	if code := cli.Run(b.Context(), argv, io.Discard, io.Discard); code != cli.ExitOK {
		b.Fatalf("kir %v: exit %d", args, code)
	}
}

// BenchmarkContainPod times one `kir contain pod NAME -n NS` (isolate,
// label, cordon and taint, events), in-process, on the loopback API server.
func BenchmarkContainPod(b *testing.B) {
	f := benchFixture(b)
	benchPods(b, f, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		runKir(b, "contain", "pod", fmt.Sprintf("bench-%04d", i), "-n", f.ns, "--no-evidence")
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/contain")
}

// BenchmarkContainPodWithEvidence times the default `kir contain pod`:
// the pod recorded, isolated, its node cordoned, then its logs, events
// and manifests collected and the bundle sealed and signed. ms-to-isolated
// is from the command's start to the end of the isolate step: the window
// evidence-first containment leaves open.
func BenchmarkContainPodWithEvidence(b *testing.B) {
	f := benchFixture(b)
	benchPods(b, f, b.N)
	keys := b.TempDir()
	if err := evidence.Keygen(keys, "ed25519"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total, isolated time.Duration
	for i := range b.N {
		var out bytes.Buffer
		start := time.Now()
		argv := []string{"kir", "contain", "pod", fmt.Sprintf("bench-%04d", i), "-n", f.ns, "-o", "json",
			"--key", filepath.Join(keys, evidence.PrivateKeyFile), "--kubeconfig", cluster.Kubeconfig}
		if code := cli.Run(b.Context(), argv, &out, io.Discard); code != cli.ExitOK {
			b.Fatalf("kir %v: exit %d", argv, code)
		}
		total += time.Since(start)
		var rep cli.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			b.Fatal(err)
		}
		for _, s := range rep.Steps {
			if s.Name == "isolate" {
				isolated += s.Finished.Sub(start)
			}
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/contain")
	b.ReportMetric(float64(isolated.Microseconds())/1000/float64(b.N), "ms-to-isolated")
}

// BenchmarkContain1000Pods times `kir contain pod -l app=bench -n NS` over
// 1,000 pods of one namespace. Goal: ≤ 5 s. Next to it, on 1,000 other
// pods, the floor: the writes that containment needs, made by a bare
// client-go (writesFloor), so the figure says how far kir is from what the
// API server costs on this machine.
func BenchmarkContain1000Pods(b *testing.B) {
	const n = 1000
	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // the kernel's comm is at most 15 bytes
	}
	for range b.N {
		b.StopTimer()
		// The floor first: the run after it works on a larger cluster,
		// so any advantage goes to the floor.
		ff := benchFixture(b)
		benchPods(b, ff, n)
		syscall.Sync() // the test binary's own writeback must not compete
		cpu0 := kubetest.CPUTimes()
		d := writesFloor(b, ff)
		cpu := kubetest.CPUTimes().Since(cpu0)
		b.ReportMetric(d.Seconds()*1000, "floor-ms/1000pods")
		b.ReportMetric(cpu.Total().Seconds()*1000/n, "floor-machine-cpu-ms/pod")
		b.Logf("floor: CPU by process: %v", cpu)

		f := benchFixture(b)
		benchPods(b, f, n)
		syscall.Sync()
		cpu0 = kubetest.CPUTimes()
		profiled := apiserverProfile(b)
		b.StartTimer()
		start := time.Now()
		runKir(b, "contain", "pod", "-l", "app=bench", "-n", f.ns, "--no-evidence")
		d = time.Since(start)
		profiled()
		cpu = kubetest.CPUTimes().Since(cpu0)
		b.ReportMetric(d.Seconds()*1000, "ms/1000pods")
		b.ReportMetric(n/d.Seconds(), "pods/s")
		// Where the time goes: every process here shares the machine's
		// cores, so the control plane's CPU per pod bounds the rate.
		b.ReportMetric(cpu["kube-apiserver"].Seconds()*1000/n, "apiserver-cpu-ms/pod")
		b.ReportMetric(cpu["etcd"].Seconds()*1000/n, "etcd-cpu-ms/pod")
		b.ReportMetric(cpu[self].Seconds()*1000/n, "kir-cpu-ms/pod")
		b.ReportMetric(cpu.Total().Seconds()*1000/n, "machine-cpu-ms/pod")
		b.Logf("kir: CPU by process: %v", cpu)
	}
}

// writesFloor makes, with a bare client-go and none of kir's code, the
// writes containing every pod of f's namespace needs, the way kir makes
// them: one LIST, then 32 pods at once, each with its quarantine policy
// and its label and annotations applied server-side and an Event; the
// node cordoned and tainted once. It returns the time they took.
func writesFloor(b *testing.B, f *fixture) time.Duration {
	b.Helper()
	ctx := b.Context()
	kc, err := kube.New(kube.Options{Kubeconfig: cluster.Kubeconfig}) // client-go as kir sets it: protobuf, its QPS
	if err != nil {
		b.Fatal(err)
	}
	c := kc.Interface
	apply := metav1.ApplyOptions{FieldManager: action.FieldManager, Force: true}
	start := time.Now()
	pods, err := c.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, pod := range pods.Items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			value := action.QuarantineValue(pod.UID)
			policy := contain.QuarantinePolicy(&pod, contain.AllowList{}, map[string]string{
				action.AnnotationIncident: "floor", action.AnnotationContainedAt: now.Format(time.RFC3339), action.AnnotationPod: f.ns + "/" + pod.Name,
			})
			if _, err := c.NetworkingV1().NetworkPolicies(f.ns).Apply(ctx, policy, apply); err != nil {
				b.Error(err)
				return
			}
			prior, _ := json.Marshal(pod.Labels)
			label := corev1ac.Pod(pod.Name, f.ns).WithUID(pod.UID).
				WithLabels(map[string]string{action.LabelQuarantine: value}).
				WithAnnotations(map[string]string{
					action.AnnotationIncident: "floor", action.AnnotationContainedAt: now.Format(time.RFC3339),
					action.AnnotationContainedBy: "admin", action.AnnotationPolicy: action.PolicyName(value),
					action.AnnotationPriorLabels: string(prior),
				})
			if _, err := c.CoreV1().Pods(f.ns).Apply(ctx, label, apply); err != nil {
				b.Error(err)
				return
			}
			ev := &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()), Namespace: f.ns},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: f.ns, Name: pod.Name, UID: pod.UID},
				Reason:         "Quarantined", Message: "floor", Type: corev1.EventTypeWarning,
				FirstTimestamp: metav1.NewTime(now), LastTimestamp: metav1.NewTime(now), Count: 1,
			}
			if _, err := c.CoreV1().Events(f.ns).Create(ctx, ev, metav1.CreateOptions{FieldManager: action.FieldManager}); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	node := corev1ac.Node(f.node).
		WithSpec(corev1ac.NodeSpec().WithUnschedulable(true).
			WithTaints(corev1ac.Taint().WithKey(action.LabelQuarantine).WithEffect(corev1.TaintEffectNoSchedule)))
	if _, err := c.CoreV1().Nodes().Apply(ctx, node, apply); err != nil {
		b.Error(err)
	}
	return time.Since(start)
}

// apiserverProfile starts a CPU profile of the API server when
// KIR_BENCH_APISERVER_PROFILE names a file (and KIR_TEST_PROFILING=1 lets
// the API server serve it), and returns a function that waits for it and
// writes it there for go tool pprof.
func apiserverProfile(b *testing.B) (wait func()) {
	path := os.Getenv("KIR_BENCH_APISERVER_PROFILE")
	if path == "" {
		return func() {}
	}
	done := make(chan error, 1)
	go func() {
		raw, err := cluster.Client.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", "8").Timeout(time.Minute).DoRaw(context.Background())
		if err == nil {
			err = os.WriteFile(path, raw, 0o600)
		}
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			b.Errorf("profiling the API server: %v", err)
		}
	}
}
