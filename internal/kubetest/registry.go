package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// DistributionRegistry is the Debian package docker-registry: the
// reference registry server (Distribution), as a real peer. make test
// installs it.
const DistributionRegistry = "/usr/bin/docker-registry"

// StartDistribution runs a Distribution registry, its own process storing
// to a temporary directory, on a free loopback port until the test ends,
// and returns its host:port once it answers.
func StartDistribution(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(DistributionRegistry); err != nil {
		t.Fatalf("the Distribution registry is needed (Debian package docker-registry): %v", err)
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	config := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(config, distributionConfig(filepath.Join(dir, "data"), addr), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(DistributionRegistry, "serve", config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	output := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	began := time.Now()
	err = Eventually(t.Context(), 10*time.Second, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			return false, fmt.Errorf("docker-registry exited: %v\n%s", err, output())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("docker-registry on %s not ready: %v\n%s", addr, err, output())
	}
	t.Logf("docker-registry ready on %s in %s", addr, time.Since(began).Round(time.Millisecond))
	return addr
}

// distributionConfig is the registry's configuration: storage in dir,
// listening on addr.
func distributionConfig(dir, addr string) []byte {
	return fmt.Appendf(nil, "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", dir, addr)
}

// Push pushes img to a registry as ref (a tag) and returns its reference
// by digest.
func Push(ref string, img v1.Image) (name.Digest, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(tag, img); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Context().Digest(d.String()), nil
}

// CheckLayout checks an OCI image layout as kir writes an image into a
// bundle: its index.json names digest alone, an image (an index when
// index is true) that go-containerregistry's validate accepts, and every
// blob's sha256 is its name. It returns every problem found.
func CheckLayout(dir, digest string, index bool) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != digest {
		return fmt.Errorf("%s/index.json names %+v, want %s alone", dir, m.Manifests, digest)
	}
	var problems []error
	h := m.Manifests[0].Digest
	if index {
		child, err := ii.ImageIndex(h)
		if err != nil {
			return err
		}
		if err := validate.Index(child); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", dir, err))
		}
	} else {
		img, err := ii.Image(h)
		if err != nil {
			return err
		}
		if err := validate.Image(img); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", dir, err))
		}
	}
	// Our own check of every blob: its sha256 is its name.
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		return errors.Join(append(problems, err)...)
	}
	for _, b := range blobs {
		content, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", b.Name()))
		if err != nil {
			return errors.Join(append(problems, err)...)
		}
		if got, _, _ := v1.SHA256(bytes.NewReader(content)); got.Hex != b.Name() {
			problems = append(problems, fmt.Errorf("%s/blobs/sha256/%s hashes to %s", dir, b.Name(), got.Hex))
		}
	}
	return errors.Join(problems...)
}
