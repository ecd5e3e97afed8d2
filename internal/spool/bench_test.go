package spool_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAdd16 is kir serve's load: 16 senders adding 1 KiB alerts, each
// waiting for its fsync. b.N is the total number of adds.
func BenchmarkAdd16(b *testing.B) { benchmarkAdd(b, 16) }

// BenchmarkAddSerial is one sender: one write and one fsync per add.
func BenchmarkAddSerial(b *testing.B) { benchmarkAdd(b, 1) }

func benchmarkAdd(b *testing.B, senders int) {
	s, _ := open(b, b.TempDir())
	data := make([]byte, 1<<10)
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range senders {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				if _, err := s.Add(b.Context(), data); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()

	st := s.Stats()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
	b.ReportMetric(float64(st.Adds)/float64(st.Commits), "records/commit")
	b.ReportMetric(float64(st.SyncTime.Microseconds())/float64(st.Commits)/1000, "ms/fsync")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
	if rss, ok := maxRSS(); ok {
		b.ReportMetric(float64(rss)/(1<<20), "MiB-maxrss") // of the whole test binary
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}
