package contain_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"

	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/kubetest"
)

// BenchmarkContain1000Pods times `kir contain pod -l app=bench -n NS` over
// 1,000 pods of one namespace: kir, a process of its own (KirBinary; its
// start is a few ms of the figure). Goal: ≤ 5 s. Next to it, on 1,000
// other pods, the floor: the writes that containment needs, made by a bare
// client-go (writesFloor), so the figure says how far kir is from what the
// API server costs on this machine.
func BenchmarkContain1000Pods(b *testing.B) {
	const n = 1000
	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	kubetest.KirBinary(b) // built before the clock starts
	for range b.N {
		b.StopTimer()
		// The floor first: the run after it works on a larger cluster,
		// so any advantage goes to the floor.
		ff := newFixture(b, 0)
		ff.BarePods(b, "bench", n)
		syscall.Sync() // the test binary's own writeback must not compete
		cpu0 := kubetest.CPUTimes()
		d := writesFloor(b, ff)
		cpu := kubetest.CPUTimes().Since(cpu0)
		b.ReportMetric(d.Seconds()*1000, "floor-ms/1000pods")
		b.ReportMetric(cpu.Total().Seconds()*1000/n, "floor-machine-cpu-ms/pod")
		b.Logf("floor: CPU by process: %v", cpu)

		f := newFixture(b, 0)
		f.BarePods(b, "bench", n)
		syscall.Sync()
		cpu0 = kubetest.CPUTimes()
		profiled := apiserverProfile(b)
		b.StartTimer()
		start := time.Now()
		r := kir.Run(b, "contain", "pod", "-l", "app=bench", "-n", f.Namespace, "--no-evidence")
		d = time.Since(start)
		if r.Code != 0 {
			b.Fatalf("kir contain pod -l app=bench: exit %d\n%s", r.Code, r.Stderr)
		}
		profiled()
		cpu = kubetest.CPUTimes().Since(cpu0)
		cpu["kir"] = r.CPU // exited: CPUTimes cannot see it
		b.ReportMetric(d.Seconds()*1000, "ms/1000pods")
		b.ReportMetric(n/d.Seconds(), "pods/s")
		// Where the time goes: every process here shares the machine's
		// cores, so the control plane's CPU per pod bounds the rate.
		b.ReportMetric(cpu["kube-apiserver"].Seconds()*1000/n, "apiserver-cpu-ms/pod")
		b.ReportMetric(cpu["etcd"].Seconds()*1000/n, "etcd-cpu-ms/pod")
		b.ReportMetric(cpu["kir"].Seconds()*1000/n, "kir-cpu-ms/pod")
		b.ReportMetric(cpu.Total().Seconds()*1000/n, "machine-cpu-ms/pod")
		b.Logf("kir: CPU by process: %v", cpu)
	}
}

// writesFloor makes, with a bare client-go and none of kir's code, the
// writes containing every pod of f's namespace needs, the way kir makes
// them: one LIST, then 32 pods at once, each with its quarantine label
// applied server-side alone, then its quarantine policy with kir's record,
// and an Event; the node cordoned and tainted once. It returns the time they took.
func writesFloor(b *testing.B, f *fixture) time.Duration {
	b.Helper()
	ctx := b.Context()
	kc, err := kube.New(kube.Options{Kubeconfig: cluster.Kubeconfig}) // client-go as kir sets it: protobuf, its QPS
	if err != nil {
		b.Fatal(err)
	}
	c := kc.Interface
	applyAs := func(manager string) metav1.ApplyOptions {
		return metav1.ApplyOptions{FieldManager: manager, Force: true}
	}
	start := time.Now()
	pods, err := c.CoreV1().Pods(f.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
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
			label := corev1ac.Pod(pod.Name, f.Namespace).WithUID(pod.UID).
				WithLabels(map[string]string{action.LabelQuarantine: value})
			if _, err := c.CoreV1().Pods(f.Namespace).Apply(ctx, label, applyAs(action.FieldManagerQuarantineLabel)); err != nil {
				b.Error(err)
				return
			}
			policy := contain.QuarantinePolicy(&pod, contain.AllowList{}, map[string]string{
				action.AnnotationIncident: "floor", action.AnnotationContainedAt: now.Format(time.RFC3339),
				action.AnnotationContainedBy: "admin", action.AnnotationPod: f.Namespace + "/" + pod.Name,
			})
			if _, err := c.NetworkingV1().NetworkPolicies(f.Namespace).Apply(ctx, policy, applyAs(action.FieldManagerQuarantinePolicy)); err != nil {
				b.Error(err)
				return
			}
			ev := &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()), Namespace: f.Namespace},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: f.Namespace, Name: pod.Name, UID: pod.UID},
				Reason:         "Quarantined", Message: "floor", Type: corev1.EventTypeWarning,
				FirstTimestamp: metav1.NewTime(now), LastTimestamp: metav1.NewTime(now), Count: 1,
			}
			if _, err := c.CoreV1().Events(f.Namespace).Create(ctx, ev, metav1.CreateOptions{FieldManager: action.FieldManager}); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	node := corev1ac.Node(f.Node).
		WithSpec(corev1ac.NodeSpec().WithUnschedulable(true).
			WithTaints(corev1ac.Taint().WithKey(action.LabelQuarantine).WithEffect(corev1.TaintEffectNoSchedule)))
	if _, err := c.CoreV1().Nodes().Apply(ctx, node, applyAs(action.FieldManager)); err != nil {
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
