package collect_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
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
	kubetest.Main(m, &cluster, kubetest.Options{
		ImageIDs: true,
		PodLogs: []kubetest.PodLogs{
			{Containers: []string{"app"}, Log: appLog(), Previous: logTime + " stderr F " + appPreviousLog + "\n"},
			{Containers: []string{chattyContainer}, Log: chattyLog(false)},
			{Log: logTime + " stdout F " + otherLog + "\n"},
		},
		AuditLog: true,
		Setup:    setup,
	})
}

func appLog() string {
	var b strings.Builder
	for i := range appLogLines {
		fmt.Fprintf(&b, "%s stdout F %s #%d\n", logTime, appLogLine, i)
	}
	return b.String()
}

// What kwok serves for containers named chattyContainer: chattyLines
// lines of chattyLineBytes (~30 MiB), the last one chattyLatest.
const (
	chattyContainer = "chatty"
	chattyLines     = 230_000
	chattyLineBytes = 105
	chattyLatest    = "the attacker's latest line"
)

// chattyLog is the chatty container's log as kwok reads it (CRI format),
// or, with stream set, as the kubelet API sends it with timestamps.
func chattyLog(stream bool) string {
	var b strings.Builder
	b.Grow(chattyLines * (chattyLineBytes + 16))
	prefix := logTime + " stdout F "
	if stream {
		prefix = logTime + " "
	}
	pad := strings.Repeat("x", chattyLineBytes)
	for i := range chattyLines - 1 {
		line := fmt.Sprintf("line %07d ", i)
		b.WriteString(prefix + line + pad[len(line):] + "\n")
	}
	b.WriteString(prefix + chattyLatest + "\n")
	return b.String()
}

// setup makes client and fills the registry.
func setup(_ context.Context, c *kubetest.Cluster) (func(), error) {
	cfg := rest.CopyConfig(c.Config)
	cfg.Wrap(kube.AuditIDTransport)
	var err error
	if client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	reg = strings.TrimPrefix(srv.URL, "http://")
	if err := pushImages(); err != nil {
		srv.Close()
		return nil, err
	}
	return srv.Close, nil
}

// pushImages pushes appImage (one platform) and multiImage (an index of
// two) to the in-process registry.
func pushImages() error {
	img, err := random.Image(4096, 2)
	if err != nil {
		return err
	}
	if appImage, err = kubetest.Push(reg+"/test/app:1", img); err != nil {
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
