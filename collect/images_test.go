package collect_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/collect"
	"kir.dev/kir/internal/kubetest"
)

// TestImageFromDistributionRegistry pulls a pod's image from a real
// Distribution registry (its own process, on 127.0.0.1) and checks the
// layout: index.json names the pod's image ID, every blob verifies.
func TestImageFromDistributionRegistry(t *testing.T) {
	t.Parallel()
	host := kubetest.StartDistribution(t)
	img, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := kubetest.Push(host+"/evidence/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "distribution")
	pod := w.simplePod(t, "pulled", host+"/evidence/app:1", "docker-pullable://"+ref.String())
	sink := newDirSink(t.TempDir())
	res, err := collect.Pod(t.Context(), client, w.ns, pod.Name, collect.Options{Sink: sink, Images: true, Insecure: true})
	if err != nil {
		t.Fatalf("%v\nnotes:\n%s", err, strings.Join(res.Notes, "\n"))
	}
	if len(res.Images) != 1 || res.Images[0].Reference != ref.String() || res.Images[0].Blobs != 5 {
		t.Fatalf("images %+v, want %s with 5 blobs (manifest, config, 3 layers)", res.Images, ref)
	}
	checkLayout(t, filepath.Join(sink.dir, "images/0"), ref.DigestStr(), false)
}

// TestPullImageCorrupted: content that does not hash to its digest is
// refused with ErrDigestMismatch, for a blob and for the manifest itself.
func TestPullImageCorrupted(t *testing.T) {
	t.Parallel()
	var corrupt atomic.Pointer[string] // "blobs" or "manifests": which responses to flip a byte of
	corrupt.Store(new(string))
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		part := *corrupt.Load()
		if r.Method != http.MethodGet || part == "" || !strings.Contains(r.URL.Path, "/"+part+"/") {
			inner.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if len(body) > 0 {
			body[len(body)/2] ^= 0xff
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := kubetest.Push(strings.TrimPrefix(srv.URL, "http://")+"/tampered/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"blobs", "manifests"} {
		corrupt.Store(&part)
		sink := newDirSink(t.TempDir())
		got, err := collect.PullImage(t.Context(), ref.String(), "images/0", collect.Options{Sink: sink})
		if !errors.Is(err, collect.ErrDigestMismatch) {
			t.Errorf("corrupted %s: err %v, want ErrDigestMismatch", part, err)
		}
		if got.Error == "" {
			t.Errorf("corrupted %s: Image %+v records no error", part, got)
		}
	}
}

// TestPullSecretsAuthenticate: a registry that demands the credentials of
// the pod's image pull secret is reached with PullSecrets, refuses
// without, and custody says which credentials were used.
func TestPullSecretsAuthenticate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "pullsecret")
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "puller" || p != w.marker {
			rw.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(rw, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host + "/private/app:1")
	if err != nil {
		t.Fatal(err)
	}
	// Pushed behind the auth check's back, straight to the inner registry.
	plain := httptest.NewServer(inner)
	t.Cleanup(plain.Close)
	ref, err := kubetest.Push(strings.TrimPrefix(plain.URL, "http://")+"/private/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	imageID := tag.Context().Digest(ref.DigestStr()).String()

	config := fmt.Sprintf(`{"auths":{%q:{"username":"puller","password":%q}}}`, host, w.marker)
	if _, err := cluster.Client.CoreV1().Secrets(w.ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		StringData: map[string]string{corev1.DockerConfigJsonKey: config},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "private", Labels: map[string]string{"pod": "private"}, Annotations: map[string]string{kubetest.ImageIDAnnotation: imageID}},
		Spec: corev1.PodSpec{
			NodeName:         w.node,
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			Containers:       []corev1.Container{{Name: "app", Image: tag.String()}},
		},
	}
	if _, err := cluster.Client.CoreV1().Pods(w.ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitPod(t, "pod=private", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	t.Run("with the pull secret", func(t *testing.T) {
		sink := newDirSink(t.TempDir())
		res, err := collect.Pod(t.Context(), client, w.ns, "private", collect.Options{Sink: sink, Images: true, PullSecrets: true})
		if err != nil {
			t.Fatalf("%v\nnotes:\n%s", err, strings.Join(res.Notes, "\n"))
		}
		checkLayout(t, filepath.Join(sink.dir, "images/0"), ref.DigestStr(), false)
		wantNote(t, res, "registry credentials: the pod's imagePullSecrets pull, then the default keychain")
		assertNoMarker(t, sink, w.marker)
	})
	t.Run("without", func(t *testing.T) {
		sink := newDirSink(t.TempDir())
		res, err := collect.Pod(t.Context(), client, w.ns, "private", collect.Options{Sink: sink, Images: true})
		if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Errorf("err %v, want the registry's refusal", err)
		}
		wantNote(t, res, "the pod's imagePullSecrets were not asked for")
		if _, ok := sink.file("logs/app.log"); !ok {
			t.Error("the failed pull stopped collection")
		}
	})
}

// assertNoMarker fails if any file but image blobs, or custody, holds
// marker.
func assertNoMarker(t *testing.T, sink *dirSink, marker string) {
	t.Helper()
	for path := range sink.files {
		if strings.Contains(path, "/blobs/") {
			continue
		}
		if bytes.Contains(mustRead(t, sink, path), []byte(marker)) {
			t.Errorf("%s holds the secret marker", path)
		}
	}
	for _, e := range sink.entries() {
		if strings.Contains(fmt.Sprint(e.Detail), marker) {
			t.Errorf("custody entry %+v holds the secret marker", e)
		}
	}
}

// TestPullImageProgress: a progress bar goes to a writer that asks for
// one, never to a file that is not a terminal (a log, a pipe).
func TestPullImageProgress(t *testing.T) {
	t.Parallel()
	var bar bytes.Buffer
	sink := newDirSink(t.TempDir())
	img, err := collect.PullImage(t.Context(), appImage.String(), "images/0", collect.Options{Sink: sink, Progress: &bar})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bar.String(), "images/0") || !strings.Contains(bar.String(), "100%") {
		t.Errorf("progress output %q: want a finished bar for images/0", bar.String())
	}
	if img.Reference != appImage.String() || img.Blobs != 4 || img.Manifests != 1 {
		t.Errorf("image %+v: want %s, a manifest, a config and 2 layers", img, appImage)
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := collect.PullImage(t.Context(), appImage.String(), "images/0", collect.Options{Sink: newDirSink(t.TempDir()), Progress: f}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("%d bytes of progress bar written to a plain file", fi.Size())
	}
}
