package serve_test

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkAPIRequests counts the requests the API server served for a
// storm of 60 alerts on 60 pods sent at once to a kir serve process (from
// its apiserver_request_total): until the last pod's policy was stored,
// which is what the storm's isolation competes with, and in all, once the
// runs (evidence included) are done. Reports both per alert and logs them
// by verb and resource. Unlike a latency, these counts do not drift with
// the machine's speed.
func BenchmarkAPIRequests(b *testing.B) {
	const n = 60
	buildKir(b)
	for range b.N {
		w := newWorld(b, n)
		pw := watchPolicies(b, w.ns)
		state := b.TempDir()
		p := startServe(b, state, "requests", benchFlags...)
		time.Sleep(3 * time.Second) // serve's own start-up requests are not counted
		before := apiRequests(b)
		var wg sync.WaitGroup
		for i, pod := range w.pods {
			wg.Go(func() { alertLatency(b, p.url, w.ns, pod, fmt.Sprintf("requests-%d", i), pw) })
		}
		wg.Wait()
		isolated := apiRequests(b)
		finishedRuns(b, state, n, 2*time.Minute)
		time.Sleep(time.Second) // the records' last writes
		done := apiRequests(b)
		var keys []string
		for k := range done {
			if done[k] > before[k] {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(x, y string) int { return int(done[y] - before[y] - done[x] + before[x]) })
		var untilPolicy, all float64
		for _, k := range keys {
			untilPolicy += isolated[k] - before[k]
			all += done[k] - before[k]
			b.Logf("%-34s until the last policy %5.0f   in all %5.0f", k, isolated[k]-before[k], done[k]-before[k])
		}
		b.ReportMetric(untilPolicy/n, "requests-until-policy/alert")
		b.ReportMetric(all/n, "requests/alert")
	}
}

// apiRequests reads the API server's request counts by verb and resource.
func apiRequests(b *testing.B) map[string]float64 {
	raw, err := cluster.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		labels, ok := strings.CutPrefix(sc.Text(), "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, val, _ := strings.Cut(labels, "} ")
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		key := metricLabel(labels, "verb") + " " + metricLabel(labels, "resource")
		if sub := metricLabel(labels, "subresource"); sub != "" {
			key += "/" + sub
		}
		out[key] += v
	}
	return out
}

// metricLabel is label name's value in a Prometheus sample's labels.
func metricLabel(labels, name string) string {
	_, rest, ok := strings.Cut(","+labels, ","+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
