package collect_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/kubetest"
)

// The world every test of this package shares: a real control plane
// (etcd, kube-apiserver with an audit log, controller-manager, scheduler,
// kwok with kir's image-ID stages and pod logs from files) and an OCI
// registry in this process holding two images.
var (
	cluster *kubetest.Cluster
	// client is an admin client that records Audit-Ids, as kube.New's do.
	client kubernetes.Interface
	// auditLog is the API server's audit log (JSON lines).
	auditLog string
	// reg is the in-process registry's host:port; appImage and
	// multiImage were pushed to it, the second as a two-platform index.
	reg        string
	appImage   name.Digest
	multiImage name.Digest
)

// What kwok serves as logs: appLog and appPreviousLog for containers named
// "app", otherLog (and no previous log) for every other container.
const (
	appLogLines    = 100
	appLogLine     = "GET /healthz 200 from 10.0.0.7 user-agent curl/8.5"
	appPreviousLog = "panic: the attacker's payload crashed me"
	otherLog       = "hello from another container"
	logTime        = "2026-01-02T03:04:05.000000000Z"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "kir-collect-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	kwokConfig, err := kwokConfig(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	policy := filepath.Join(tmp, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	auditLog = filepath.Join(tmp, "audit.log")
	cluster, err = kubetest.Start(ctx, kubetest.Options{
		ExtraKwokConfig: kwokConfig,
		APIServerFlags:  []string{"--audit-policy-file=" + policy, "--audit-log-path=" + auditLog},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the test control plane: %v\n", err)
		return 1
	}
	defer cluster.Stop()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(kube.AuditIDTransport)
	if client, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg = strings.TrimPrefix(srv.URL, "http://")
	if err := pushImages(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "control plane logs:\n%s\n", cluster.Logs())
	}
	return code
}

// kwokConfig writes the log files kwok serves and returns kir's image-ID
// stages and the ClusterLogs that serves them.
func kwokConfig(dir string) ([][]byte, error) {
	var app strings.Builder
	for i := range appLogLines {
		fmt.Fprintf(&app, "%s stdout F %s #%d\n", logTime, appLogLine, i)
	}
	files := map[string]string{
		"app.log":          app.String(),
		"app.previous.log": logTime + " stderr F " + appPreviousLog + "\n",
		"other.log":        logTime + " stdout F " + otherLog + "\n",
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	logs := fmt.Appendf(nil, `apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: collect-test
spec:
  logs:
  - containers: [app]
    logsFile: %q
    previousLogsFile: %q
  - logsFile: %q
`, filepath.Join(dir, "app.log"), filepath.Join(dir, "app.previous.log"), filepath.Join(dir, "other.log"))
	stages, err := kubetest.ImageIDStages()
	if err != nil {
		return nil, err
	}
	return append(stages, logs), nil
}

// pushImages pushes appImage (one platform) and multiImage (an index of
// two) to the in-process registry.
func pushImages() error {
	img, err := random.Image(4096, 2)
	if err != nil {
		return err
	}
	if appImage, err = push(reg+"/test/app:1", img); err != nil {
		return err
	}
	idx, err := random.Index(2048, 2, 2)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(reg + "/test/multi:1")
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		return fmt.Errorf("pushing %s: %w", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	multiImage = tag.Context().Digest(d.String())
	return nil
}

// push pushes img as ref and returns its reference by digest.
func push(ref string, img v1.Image) (name.Digest, error) {
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
