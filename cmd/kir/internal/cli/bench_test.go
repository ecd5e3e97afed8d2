package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/evidence"
)

// The benchmarks run kir in-process, through cli.Run: they measure kir,
// not a process start. One at a time, as go test runs benchmarks.

// runKir runs kir in-process with args against the test cluster, its runs
// kept in state, and fails the benchmark unless it exits 0.
func runKir(b *testing.B, state string, out io.Writer, args ...string) {
	b.Helper()
	argv := append(append([]string{"kir"}, args...), "--kubeconfig", cluster(b).Kubeconfig, "--state-dir", state)
	if code := cli.Run(b.Context(), argv, out, io.Discard); code != cli.ExitOK {
		b.Fatalf("kir %v: exit %d", args, code)
	}
}

// BenchmarkContainPod times one `kir contain pod NAME -n NS` (isolate,
// label, cordon and taint, events), in-process, on the loopback API server.
func BenchmarkContainPod(b *testing.B) {
	f := newFixture(b, 0)
	f.BarePods(b, "bench", b.N)
	state := b.TempDir()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		runKir(b, state, io.Discard, "contain", "pod", fmt.Sprintf("bench-%04d", i), "-n", f.Namespace, "--no-evidence")
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/contain")
}

// BenchmarkContainPodWithEvidence times the default `kir contain pod`:
// the pod recorded, isolated, its node cordoned, then its logs, events
// and manifests collected and the bundle sealed and signed. ms-to-isolated
// is from the command's start to the end of the isolate step: the window
// evidence-first containment leaves open.
func BenchmarkContainPodWithEvidence(b *testing.B) {
	f := newFixture(b, 0)
	f.BarePods(b, "bench", b.N)
	state := b.TempDir()
	keys := b.TempDir()
	if err := evidence.Keygen(keys, "ed25519"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total, isolated time.Duration
	for i := range b.N {
		var out bytes.Buffer
		start := time.Now()
		runKir(b, state, &out, "contain", "pod", fmt.Sprintf("bench-%04d", i), "-n", f.Namespace, "-o", "json",
			"--key", filepath.Join(keys, evidence.PrivateKeyFile))
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
