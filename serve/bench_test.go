package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/serve"
)

// policyWatch records when each NetworkPolicy of a namespace is ADDED, as
// the API server reports it to a watcher.
type policyWatch struct {
	mu       sync.Mutex
	added    map[string]time.Time
	restarts int
}

// watchPolicies watches ns's NetworkPolicies from now on. The API server
// closes a watch whose reader falls behind (a busy test process); the
// watch then resumes where it was, and the benchmark says so, since the
// times it sees just after are late by the reconnection.
func watchPolicies(b *testing.B, ns string) *policyWatch {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := cluster.Client.NetworkingV1().NetworkPolicies(ns)
	list, err := client.List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pw := &policyWatch{added: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rv := list.ResourceVersion
		for ctx.Err() == nil {
			w, err := client.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					break
				}
				p, ok := ev.Object.(*networkingv1.NetworkPolicy)
				if !ok {
					continue
				}
				rv = p.ResourceVersion
				if ev.Type == watch.Added {
					now := time.Now()
					pw.mu.Lock()
					pw.added[p.Name] = now
					pw.mu.Unlock()
				}
			}
			w.Stop()
			if ctx.Err() == nil {
				pw.mu.Lock()
				pw.restarts++
				pw.mu.Unlock()
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		if pw.restarts > 0 {
			b.Logf("the watch of %s's policies was closed %d times and resumed: times seen just after are late", ns, pw.restarts)
		}
	})
	return pw
}

// wait waits for the policy name and returns when the watch saw it added
// (polling does not move that time).
func (pw *policyWatch) wait(b *testing.B, name string) time.Time {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pw.mu.Lock()
		t, ok := pw.added[name]
		pw.mu.Unlock()
		if ok {
			return t
		}
		if time.Now().After(deadline) {
			b.Fatalf("policy %s not added within 60s", name)
		}
		time.Sleep(time.Millisecond)
	}
}

// benchFlags run kir serve as deployed: the tests' short claim lease
// (quick takeovers) would add a renewal per run and second.
// The budget is kept, large: its write is part of the measured path.
var benchFlags = []string{"--lease-duration", serve.DefaultLease.String(), "--budget-pods", "1000"}

func percentiles(d []time.Duration) (p50, p90, p99 time.Duration) {
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return at(.50), at(.90), at(.99)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkAlertToPolicy times, on the loopback control plane, a real kir
// serve process from the POST of a Critical alert to its pod's quarantine
// NetworkPolicy being stored (the watch's ADDED event): alerts paced (each
// after the last policy) and back to back (all at once), next to a bare
// client-go Create of the same policy timed the same way: the floor.
// Run with -benchtime 1x; it makes its own 60 pods per mode.
func BenchmarkAlertToPolicy(b *testing.B) {
	const n = 60
	buildKir(b)
	for range b.N {
		// The floor: a bare client-go creates the policy kir would, with
		// its labels, annotations and owner, pod after pod.
		fw := newWorld(b, n)
		floorWatch := watchPolicies(b, fw.ns)
		var floor []time.Duration
		for _, pod := range fw.pods {
			pol := typedPolicy(b, contain.QuarantinePolicy(&pod, contain.AllowList{}, map[string]string{
				action.AnnotationIncident:    "floor",
				action.AnnotationContainedAt: time.Now().UTC().Format(time.RFC3339),
				action.AnnotationContainedBy: "admin",
				action.AnnotationPod:         pod.Namespace + "/" + pod.Name,
			}))
			start := time.Now()
			if _, err := cluster.Client.NetworkingV1().NetworkPolicies(fw.ns).Create(context.Background(), pol, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			floor = append(floor, floorWatch.wait(b, pol.Name).Sub(start))
		}

		for _, mode := range []string{"paced", "back-to-back"} {
			w := newWorld(b, n)
			pw := watchPolicies(b, w.ns)
			p := startServe(b, b.TempDir(), "bench-"+mode, benchFlags...)
			lat := make([]time.Duration, n)
			cpu0 := kubetest.CPUTimes()
			send := func(i int, pod corev1.Pod) {
				lat[i], _ = alertLatency(b, p.url, w.ns, pod, fmt.Sprintf("lat-%s-%d", mode, i), pw)
			}
			if mode == "paced" {
				for i, pod := range w.pods {
					send(i, pod)
				}
			} else {
				var wg sync.WaitGroup
				for i, pod := range w.pods {
					wg.Go(func() { send(i, pod) })
				}
				wg.Wait()
			}
			// Where the machine's CPU went (2 cores here): every process
			// shares them.
			b.Logf("%s: CPU by process until the last policy: %v", mode, kubetest.CPUTimes().Since(cpu0))
			reportPercentiles(b, mode, lat)
		}

		// The rules' floor: bare parts keeping the rules kir keeps
		// (durable before 202, the pod's manifest synced before any
		// change, a journal record synced before acting; newBareReceiver)
		// and nothing else. Paced, with the API server to themselves:
		// each alert is sent once the last run, label and Event included,
		// is done. Back to back, all at once, as kir's.
		for _, mode := range []string{"paced", "back-to-back"} {
			rw := newWorld(b, n)
			rpw := watchPolicies(b, rw.ns)
			bare := newBareReceiver(b, true)
			lat := make([]time.Duration, n)
			send := func(i int, pod corev1.Pod) {
				lat[i], _ = alertLatency(b, bare.URL, rw.ns, pod, fmt.Sprintf("lat-rules-%s-%d", mode, i), rpw)
			}
			if mode == "paced" {
				for i, pod := range rw.pods {
					send(i, pod)
					bare.runs.Wait()
				}
			} else {
				var wg sync.WaitGroup
				for i, pod := range rw.pods {
					wg.Go(func() { send(i, pod) })
				}
				wg.Wait()
			}
			reportPercentiles(b, "rules-floor-"+mode, lat)
		}
		reportPercentiles(b, "floor", floor)
	}
}

// typedPolicy is the NetworkPolicy an apply configuration describes.
func typedPolicy(b *testing.B, ac *networkingv1ac.NetworkPolicyApplyConfiguration) *networkingv1.NetworkPolicy {
	raw, err := json.Marshal(ac)
	if err != nil {
		b.Fatal(err)
	}
	var pol networkingv1.NetworkPolicy
	if err := json.Unmarshal(raw, &pol); err != nil {
		b.Fatal(err)
	}
	return &pol
}

// alertLatency posts a Critical alert about pod to the kir serve at url
// and returns the time until the pod's quarantine policy is stored; false
// when the POST was refused, which it reports.
func alertLatency(b *testing.B, url, ns string, pod corev1.Pod, uuid string, pw *policyWatch) (time.Duration, bool) {
	start := time.Now()
	if code, body := postTo(b, url, alert(b, ns, pod.Name, uuid)); code != 202 {
		b.Errorf("POST: %d %s", code, body)
		return 0, false
	}
	return pw.wait(b, action.PolicyName(action.QuarantineValue(pod.UID))).Sub(start), true
}

// reportPercentiles reports lat's p50, p90 and p99 as PREFIX-p50-ms and so
// on.
func reportPercentiles(b *testing.B, prefix string, lat []time.Duration) {
	p50, p90, p99 := percentiles(lat)
	b.ReportMetric(ms(p50), prefix+"-p50-ms")
	b.ReportMetric(ms(p90), prefix+"-p90-ms")
	b.ReportMetric(ms(p99), prefix+"-p99-ms")
}

// BenchmarkAlertStorm: 10,000 alerts on 100 pods (100 identical alerts per
// pod) from 16 concurrent senders to a real kir serve process. Reports
// alerts accepted per second (each durable before its 202), the time until
// all 100 pods are isolated, containments (must be exactly 100) and the
// server's peak RSS.
func BenchmarkAlertStorm(b *testing.B) {
	const pods, per, senders = 100, 100, 16
	buildKir(b)
	bodiesFor := func(w *world) [][]byte {
		bodies := make([][]byte, pods)
		for i, pod := range w.pods {
			bodies[i] = alert(b, w.ns, pod.Name, "storm-"+pod.Name)
		}
		return bodies
	}
	for range b.N {
		// The floors first, so any advantage of a smaller cluster is
		// theirs: a bare receiver that only makes alerts durable, then
		// one that also contains each pod once (newBareReceiver).
		bare := newBareReceiver(b, false)
		d, _ := storm(b, bare.URL, bodiesFor(newWorld(b, 1)), pods*per, senders)
		b.ReportMetric(pods*per/d.Seconds(), "intake-floor-alerts/s")
		fw := newWorld(b, pods)
		bare = newBareReceiver(b, true)
		start := time.Now()
		d, _ = storm(b, bare.URL, bodiesFor(fw), pods*per, senders)
		b.ReportMetric(pods*per/d.Seconds(), "floor-alerts/s")
		// Its own record of when each policy was stored: a watch in
		// this busy process could fall behind and be closed.
		bare.runs.Wait()
		var last time.Time
		for _, pod := range fw.pods {
			t, ok := bare.isolated.Load(fw.ns + "/" + pod.Name)
			if !ok {
				b.Fatalf("floor: pod %s not isolated", pod.Name)
			}
			if t := t.(time.Time); t.After(last) {
				last = t
			}
		}
		b.ReportMetric(ms(last.Sub(start)), "floor-all-isolated-ms")

		w := newWorld(b, pods)
		pw := watchPolicies(b, w.ns)
		state := b.TempDir()
		p := startServe(b, state, "bench-storm", benchFlags...)
		bodies := bodiesFor(w)
		cpu0 := kubetest.CPUTimes()
		start = time.Now()
		// Interleaved: alert i is about pod i%pods, so every pod's storm
		// starts at once.
		accepted, rejected := storm(b, p.url, bodies, pods*per, senders)
		last = time.Time{}
		for _, pod := range w.pods {
			if t := pw.wait(b, action.PolicyName(action.QuarantineValue(pod.UID))); t.After(last) {
				last = t
			}
		}
		// Where the storm's CPU went, until every alert was accepted and
		// every pod isolated (evidence collection goes on after).
		b.Logf("CPU by process, storm start until all accepted and isolated (%s): %v", time.Since(start).Round(time.Millisecond), kubetest.CPUTimes().Since(cpu0))
		runs := finishedRuns(b, state, pods, 5*time.Minute)
		b.ReportMetric(float64(pods*per-int(rejected))/accepted.Seconds(), "alerts/s")
		b.ReportMetric(float64(rejected), "rejected")
		b.ReportMetric(ms(last.Sub(start)), "all-isolated-ms")
		b.ReportMetric(float64(len(runs)), "containments")
		b.ReportMetric(float64(peakRSS(b, p.cmd.Process.Pid))/(1<<20), "peak-RSS-MiB")
	}
}

// storm sends total alerts, alert i being bodies[i%len(bodies)], from
// senders concurrent clients to url, each reusing its connection as
// Falcosidekick's does. It returns how long until the last was answered
// and how many were not accepted.
func storm(b *testing.B, url string, bodies [][]byte, total, senders int) (time.Duration, int64) {
	var next, rejected atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url+"/falco", bytes.NewReader(bodies[i%len(bodies)]))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				// Read to the end, so that the connection is reused.
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					rejected.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), rejected.Load()
}

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// BenchmarkIntake is intake's cost per alert in this process, without the
// network: 16 senders post the same alert about one pod (after the first,
// duplicates, settled at intake), each made durable in the spool (group
// commit) before its 202. The storm's alerts/s is bounded by this and by
// what the senders and the control plane take of the machine.
func BenchmarkIntake(b *testing.B) {
	w := newWorld(b, 1)
	r := newReceiver(b, receiverOpts{})
	h := r.srv.Handler()
	body := alert(b, w.ns, w.pods[0].Name, "intake")
	b.SetParallelism(8) // 16 senders on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/falco", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Errorf("POST: %d %s", rec.Code, rec.Body)
				return
			}
		}
	})
}

// BenchmarkPacedCompare compares two kir builds, KIR_COMPARE_A and
// KIR_COMPARE_B (binaries; `make bench-compare REF=…` builds them), on
// this machine at the same moments: one kir serve each, on its own pods,
// paced alerts sent to them in turn (who goes first alternates), latency
// from POST to the quarantine policy stored. On a VM whose speed changes
// from minute to minute, only such a paired run tells a change's effect
// from the machine's.
func BenchmarkPacedCompare(b *testing.B) {
	const n = 60
	bins := []string{os.Getenv("KIR_COMPARE_A"), os.Getenv("KIR_COMPARE_B")}
	if bins[0] == "" || bins[1] == "" {
		b.Skip("set KIR_COMPARE_A and KIR_COMPARE_B to two kir binaries (make bench-compare REF=…)")
	}
	defer func(built string) { kirBinary = built }(kirBinary) // startServe runs kirBinary
	for range b.N {
		lat := pacedPair(b, n, func(i int) *serveProc {
			kirBinary = bins[i]
			return startServe(b, b.TempDir(), fmt.Sprintf("compare-%d", i), benchFlags...)
		})
		reportPercentiles(b, "A", lat[0])
		reportPercentiles(b, "B", lat[1])
	}
}

// pacedPair starts two kir serve processes (start(0), start(1)), each on
// its own n pods, and sends them paced alerts in turn (who goes first
// alternates): the latency from POST to the quarantine policy stored, of
// each, at the same moments of this machine's drifting speed.
func pacedPair(b *testing.B, n int, start func(i int) *serveProc) [2][]time.Duration {
	var (
		worlds [2]*world
		pws    [2]*policyWatch
		procs  [2]*serveProc
		lat    [2][]time.Duration
	)
	for i := range 2 {
		worlds[i] = newWorld(b, n)
		pws[i] = watchPolicies(b, worlds[i].ns)
		procs[i] = start(i)
	}
	for j := range n {
		for k := range 2 {
			i := (j + k) % 2
			d, ok := alertLatency(b, procs[i].url, worlds[i].ns, worlds[i].pods[j], fmt.Sprintf("pair-%d-%d", i, j), pws[i])
			if !ok {
				b.FailNow()
			}
			lat[i] = append(lat[i], d)
		}
	}
	return lat
}

// BenchmarkRecordsAndNotify measures, paired (pacedPair), what issue 22's
// durability and notifications cost on the alert-to-policy path: kir
// serve without response records (--no-records) against kir serve with
// them (each accepted alert written to the API server before its 202);
// kir serve with no notifications against one whose webhook receiver
// (on 127.0.0.1) never answers; and, issue 23's, kir serve without its
// tamper guard against one with it. Reports each side's percentiles and
// the p50 ratios.
func BenchmarkRecordsAndNotify(b *testing.B) {
	const n = 40
	buildKir(b)
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers, until the benchmark ends
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	b.Cleanup(func() {
		close(stop)
		hang.Close()
	})
	dir := b.TempDir()
	for name, v := range map[string]string{"url": hang.URL, "key": "notification-key-0123456789", "token": token} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	routing := filepath.Join(dir, "routing.yaml")
	cfg := fmt.Sprintf(`apiVersion: kir.dev/v1alpha1
kind: Routing
notifications:
  sinks:
    - name: hang
      type: webhook
      urlFile: %[1]s/url
      keyFile: %[1]s/key
      tokenFile: %[1]s/token
rules:
  - name: contain
    match:
      priority: ">=Critical"
    playbook: contain-pod
    params:
      namespace: ${k8s.ns.name}
      name: ${k8s.pod.name}
`, dir)
	if err := os.WriteFile(routing, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		rec := pacedPair(b, n, func(i int) *serveProc {
			flags := benchFlags
			if i == 0 {
				flags = append(slices.Clone(flags), "--no-records")
			}
			return startServe(b, b.TempDir(), fmt.Sprintf("records-%d", i), flags...)
		})
		reportPercentiles(b, "no-records", rec[0])
		reportPercentiles(b, "records", rec[1])
		ntf := pacedPair(b, n, func(i int) *serveProc {
			flags := benchFlags
			if i == 1 {
				flags = append(slices.Clone(flags), "--config", routing)
			}
			return startServe(b, b.TempDir(), fmt.Sprintf("notify-%d", i), flags...)
		})
		reportPercentiles(b, "no-notify", ntf[0])
		reportPercentiles(b, "hanging-notify", ntf[1])
		// The tamper guard (issue 23), on as deployed: it learns each new
		// quarantine from its watches and remembers it in a Lease.
		kirNS := cluster.NewFixture(b, "bench-kir", 0).Namespace
		tmp := pacedPair(b, n, func(i int) *serveProc {
			flags := benchFlags
			if i == 1 {
				flags = append(slices.Clone(flags), "--no-tamper=false", "--kir-namespace", kirNS)
			}
			return startServe(b, b.TempDir(), fmt.Sprintf("tamper-%d", i), flags...)
		})
		reportPercentiles(b, "no-tamper", tmp[0])
		reportPercentiles(b, "tamper", tmp[1])
		p50 := func(d []time.Duration) float64 { p, _, _ := percentiles(d); return ms(p) }
		b.ReportMetric(p50(rec[1])/p50(rec[0]), "records/no-records-p50")
		b.ReportMetric(p50(ntf[1])/p50(ntf[0]), "hanging/no-notify-p50")
		b.ReportMetric(p50(tmp[1])/p50(tmp[0]), "tamper/no-tamper-p50")
	}
}
