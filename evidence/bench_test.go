package evidence_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"kir.dev/kir/evidence"
)

// BenchmarkVerify1GiB verifies a bundle of 1 GiB in 8 files of 128 MiB
// (image layers, say) and, on the same files, times sha256sum, the tool an
// auditor would otherwise reach for. It reports both throughputs and their
// ratio (goal: kir ≥ 0.8× sha256sum). Run it with -benchtime 1x; the files
// are written once, before the timed part, and are in the page cache for
// both.
func BenchmarkVerify1GiB(b *testing.B) {
	const (
		files = 8
		size  = 128 << 20
	)
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		b.Fatal("sha256sum (coreutils) is not on PATH")
	}
	signer, pub := newKey(b, evidence.AlgEd25519)
	dir := filepath.Join(b.TempDir(), "bundle")
	bundle, err := evidence.Create(dir, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	block := make([]byte, 1<<20)
	rand.Read(block)
	for i := range files {
		name := fmt.Sprintf("images/%d/blobs/sha256/layer", i)
		if _, err := bundle.Put(name, io.LimitReader(repeat(block), size), evidence.Source{Kind: "image"}); err != nil {
			b.Fatal(err)
		}
	}
	if err := bundle.Seal(signer); err != nil {
		b.Fatal(err)
	}
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}

	var r *evidence.Report
	for b.Loop() {
		if r, err = evidence.Verify(dir, pub); err != nil {
			b.Fatal(err)
		}
	}
	kir := b.Elapsed() / time.Duration(b.N)
	if r.Outcome() != evidence.Verified {
		b.Fatalf("Verify: %s:%s", r.Outcome(), describe(r))
	}
	b.SetBytes(r.Bytes)

	var sum time.Duration
	for range b.N {
		start := time.Now()
		if out, err := exec.CommandContext(b.Context(), sha256sum, paths...).CombinedOutput(); err != nil {
			b.Fatalf("sha256sum: %v\n%s", err, out)
		}
		sum += time.Since(start)
	}
	sum /= time.Duration(b.N)

	mbps := func(d time.Duration) float64 { return float64(r.Bytes) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(kir), "kir-MB/s")
	b.ReportMetric(mbps(sum), "sha256sum-MB/s")
	b.ReportMetric(mbps(kir)/mbps(sum), "x-sha256sum")
}

// repeat reads block over and over.
func repeat(block []byte) io.Reader { return &repeater{block: block} }

type repeater struct {
	block []byte
	off   int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}
