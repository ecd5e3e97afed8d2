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
)

// BenchmarkImageSnapshot pulls a ~200 MB image (four random 50 MB layers)
// from a registry on loopback, with collect.PullImage into a directory
// sink (fsynced, as the evidence bundle's Put is; and not) and with
// `crane pull --format oci`, built from the module cache, and reports the
// time of each and their ratio.
func BenchmarkImageSnapshot(b *testing.B) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(srv.Close)
	img, err := random.Image(50<<20, 4)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := push(strings.TrimPrefix(srv.URL, "http://")+"/bench/big:1", img)
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

	var synced, unsynced, craned time.Duration
	b.ResetTimer()
	for b.Loop() {
		for _, noSync := range []bool{false, true} {
			dir := b.TempDir()
			sink := newDirSink(dir)
			sink.noSync = noSync
			began := time.Now()
			if _, err := collect.PullImage(b.Context(), ref.String(), "image", collect.Options{Sink: sink}); err != nil {
				b.Fatal(err)
			}
			if noSync {
				unsynced += time.Since(began)
			} else {
				synced += time.Since(began)
			}
			os.RemoveAll(dir)
		}
		dir := filepath.Join(b.TempDir(), "crane")
		began := time.Now()
		if out, err := exec.Command(crane, "pull", "--format", "oci", ref.String(), dir).CombinedOutput(); err != nil {
			b.Fatalf("crane pull: %v\n%s", err, out)
		}
		craned += time.Since(began)
		os.RemoveAll(dir)
	}
	n := float64(b.N)
	b.ReportMetric(synced.Seconds()/n, "collect-s/op")
	b.ReportMetric(unsynced.Seconds()/n, "collect-nosync-s/op")
	b.ReportMetric(craned.Seconds()/n, "crane-s/op")
	b.ReportMetric(synced.Seconds()/craned.Seconds(), "collect/crane")
	b.ReportMetric(unsynced.Seconds()/craned.Seconds(), "collect-nosync/crane")
	b.ReportMetric(float64(size)/(1<<20), "image-MiB")
}
