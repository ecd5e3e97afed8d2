package collect_test

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"kir.dev/kir/collect"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
)

// BenchmarkImageSnapshot pulls a ~200 MB image (four random 50 MB layers)
// from a registry on loopback with collect.PullImage, into an evidence
// bundle (every file durable) and into a directory without fsync, and
// with `crane pull --format oci`, built from the module cache, which
// writes to the page cache only: it reports each time, crane's with and
// without a `sync -f` after it, and the like-for-like ratios (goal ≤ 1.2×).
func BenchmarkImageSnapshot(b *testing.B) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(srv.Close)
	img, err := random.Image(50<<20, 4)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := kubetest.Push(strings.TrimPrefix(srv.URL, "http://")+"/bench/big:1", img)
	if err != nil {
		b.Fatal(err)
	}
	size := int64(0)
	if layers, err := img.Layers(); err == nil {
		for _, l := range layers {
			n, _ := l.Size()
			size += n
		}
	}
	crane := filepath.Join(b.TempDir(), "crane")
	build := exec.Command("go", "build", "-o", crane, "github.com/google/go-containerregistry/cmd/crane")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building crane: %v\n%s", err, out)
	}

	var durable, unsynced, craned, cranedDurable time.Duration
	b.ResetTimer()
	for b.Loop() {
		// Into a real evidence bundle, timed until Close has made every
		// file durable.
		bundle, err := evidence.Create(filepath.Join(b.TempDir(), "bundle"), evidence.Options{Incident: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		if _, err := collect.PullImage(b.Context(), ref.String(), "image", collect.Options{Sink: bundle}); err != nil {
			b.Fatal(err)
		}
		if err := bundle.Close(); err != nil { // durable from here
			b.Fatal(err)
		}
		durable += time.Since(began)
		os.RemoveAll(bundle.Dir())

		// Into the page cache, as crane writes.
		dir := b.TempDir()
		sink := newDirSink(dir)
		sink.noSync = true
		began = time.Now()
		if _, err := collect.PullImage(b.Context(), ref.String(), "image", collect.Options{Sink: sink}); err != nil {
			b.Fatal(err)
		}
		unsynced += time.Since(began)
		os.RemoveAll(dir)

		dir = filepath.Join(b.TempDir(), "crane")
		began = time.Now()
		if out, err := exec.Command(crane, "pull", "--format", "oci", ref.String(), dir).CombinedOutput(); err != nil {
			b.Fatalf("crane pull: %v\n%s", err, out)
		}
		craned += time.Since(began)
		// crane does not sync: what it takes to make its copy as durable
		// as the bundle's.
		if out, err := exec.Command("sync", "--file-system", dir).CombinedOutput(); err != nil {
			b.Fatalf("sync: %v\n%s", err, out)
		}
		cranedDurable += time.Since(began)
		os.RemoveAll(dir)
	}
	n := float64(b.N)
	b.ReportMetric(durable.Seconds()/n, "collect-s/op")
	b.ReportMetric(cranedDurable.Seconds()/n, "crane+sync-s/op")
	b.ReportMetric(durable.Seconds()/cranedDurable.Seconds(), "collect/crane+sync")
	b.ReportMetric(unsynced.Seconds()/n, "collect-nosync-s/op")
	b.ReportMetric(craned.Seconds()/n, "crane-s/op")
	b.ReportMetric(unsynced.Seconds()/craned.Seconds(), "collect-nosync/crane")
	b.ReportMetric(float64(size)/(1<<20), "image-MiB")
}
