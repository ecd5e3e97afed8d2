package cli_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/collect"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
)

// testImage is a random image in a registry of this process, pushed
// once, by the first test that needs it: what the pods of the collect
// tests run.
var testImage = sync.OnceValues(func() (name.Digest, error) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	img, err := random.Image(4096, 2)
	if err != nil {
		return name.Digest{}, err
	}
	return kubetest.Push(strings.TrimPrefix(srv.URL, "http://")+"/test/app:1", img)
})

// webApp is the scene of kir collect pod: a Deployment "web" of one pod
// whose container "app" runs testImage (kwok reports its digest as the
// image ID), reads a Secret holding marker into its environment, mounts it,
// and pulls with a pull secret holding marker as its password.
func webApp(t *testing.T, f *kubetest.Fixture, marker string) (*corev1.Pod, name.Digest) {
	t.Helper()
	image, err := testImage()
	if err != nil {
		t.Fatal(err)
	}
	secrets := cluster(t).Client.CoreV1().Secrets(f.Namespace)
	dockerConfig := fmt.Sprintf(`{"auths":{%q:{"username":"puller","password":%q}}}`, image.RegistryStr(), marker)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "web-secret"}, StringData: map[string]string{"password": marker, "api-key": marker + "-2"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-pull"}, Type: corev1.SecretTypeDockerConfigJson, StringData: map[string]string{corev1.DockerConfigJsonKey: dockerConfig}},
	} {
		if _, err := secrets.Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods := f.Deploy(t, kubetest.Deployment{Name: "web", Template: func(p *corev1.PodTemplateSpec) {
		p.Annotations[kubetest.ImageIDAnnotation] = image.String()
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "web-pull"}}
		p.Spec.Containers = []corev1.Container{{
			Name: "app", Image: image.Context().Tag("1").String(),
			Env: []corev1.EnvVar{{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "web-secret"}, Key: "password",
			}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: "/run/secrets/web"}},
		}}
		p.Spec.Volumes = []corev1.Volume{{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "web-secret"}}}}
	}})
	return &pods[0], image
}

// newMarker returns a value no file or output may hold.
func newMarker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "kir-marker-" + hex.EncodeToString(b)
}

// keyPair writes a signing key pair with kir's keygen and returns the
// private key's path and the public key.
func keyPair(t *testing.T) (string, crypto.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	if err := evidence.Keygen(dir, "ed25519"); err != nil {
		t.Fatal(err)
	}
	pub, err := evidence.LoadPublicKey(filepath.Join(dir, evidence.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, evidence.PrivateKeyFile), pub
}

// TestCLICollectPod is the responder's path end to end: kir collect pod
// on a real control plane, with the pod's image in a registry on
// 127.0.0.1, gives a signed bundle that verifies, holds the logs,
// manifests, events and the image whose digest is the pod's imageID, the
// run's journal and a custody log of it all, and no byte of the Secret the
// pod mounts.
func TestCLICollectPod(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	marker := newMarker(t)
	pod, image := webApp(t, f, marker)
	key, pub := keyPair(t)
	state := t.TempDir()
	out := filepath.Join(t.TempDir(), "bundle")

	r := kubetest.Kir{Kubeconfig: cluster(t).Kubeconfig, StateDir: state}.Run(t, "collect", "pod", pod.Name, "-n", f.Namespace, "--out", out, "--key", key, "--incident", "inc-collect")
	code, stdout, stderr := r.Code, r.Stdout, r.Stderr
	if code != cli.ExitOK {
		t.Fatalf("kir collect pod: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("kir collect pod:\n%s", stdout)
	for _, want := range []string{"evidence: sealed " + out, "signed by key", "kir evidence verify " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	rep, err := evidence.Verify(out, pub)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome() != evidence.Verified {
		t.Fatalf("verify: %s: %v", rep.Outcome(), rep.Problems)
	}

	dir := collect.PodDir(f.Namespace, pod.Name)
	sum, err := evidence.Show(out)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]evidence.File{}
	for _, f := range sum.Files {
		paths[f.Path] = f
	}
	for _, p := range []string{
		dir + "/pod.json", dir + "/logs/app.log", dir + "/logs/app.previous.log", dir + "/events/pod.json",
		dir + "/manifests/deployment/web.json", dir + "/manifests/secret-references.json",
		dir + "/images/images.json", collect.JournalFile,
	} {
		if _, ok := paths[p]; !ok {
			t.Errorf("bundle lacks %s", p)
		}
	}
	// The pod's image, by the digest its status reports.
	if err := kubetest.CheckLayout(filepath.Join(out, dir, "images/0"), image.DigestStr(), false); err != nil {
		t.Error(err)
	}

	var actions []string
	for _, c := range sum.Custody {
		actions = append(actions, c.Action)
	}
	for _, want := range []string{"create", "collect", "run", "run-step", "seal"} {
		if !slices.Contains(actions, want) {
			t.Errorf("custody lacks a %s entry: %v", want, actions)
		}
	}
	if sum.Incident != "inc-collect" {
		t.Errorf("incident %q", sum.Incident)
	}

	// No secret value anywhere: the bundle (images aside: they are the
	// registry's bytes), the run's state and what kir printed.
	for _, root := range []string{out, state} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(filepath.ToSlash(p), "/images/") && !strings.HasSuffix(p, "images.json") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("%s holds the Secret's value", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(stdout+stderr, marker) {
		t.Error("kir printed the Secret's value")
	}
}

// TestCLICollectPodArchiveFromDistribution collects a pod whose image is
// in a Distribution registry (its own process) into a .tar.gz, unsigned.
func TestCLICollectPodArchiveFromDistribution(t *testing.T) {
	t.Parallel()
	host := kubetest.StartDistribution(t)
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := kubetest.Push(host+"/evidence/cli:1", img)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 0)
	pod := f.Deploy(t, kubetest.Deployment{Name: "pulled", Template: func(p *corev1.PodTemplateSpec) {
		p.Labels["pod"] = "pulled"
		p.Annotations[kubetest.ImageIDAnnotation] = "docker-pullable://" + ref.String()
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: host + "/evidence/cli:1"}}
	}})[0]
	archive := filepath.Join(t.TempDir(), "evidence.tar.gz")

	r := kubetest.Kir{Kubeconfig: cluster(t).Kubeconfig}.Run(t, "collect", "pod", "-n", f.Namespace, "-l", "pod=pulled", "--out", archive)
	code, stdout, stderr := r.Code, r.Stdout, r.Stderr
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "unsigned") || !strings.Contains(stdout, "packed into "+archive) {
		t.Errorf("output does not say the bundle is unsigned and packed:\n%s", stdout)
	}
	rep, err := evidence.Verify(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome() != evidence.NotChecked || len(rep.Problems) != 0 {
		t.Fatalf("verify without key: %s: %v", rep.Outcome(), rep.Problems)
	}
	sum, err := evidence.Show(archive)
	if err != nil {
		t.Fatal(err)
	}
	manifest := collect.PodDir(f.Namespace, pod.Name) + "/images/0/blobs/sha256/" + strings.TrimPrefix(ref.DigestStr(), "sha256:")
	if i := slices.IndexFunc(sum.Files, func(f evidence.File) bool { return f.Path == manifest }); i < 0 || "sha256:"+sum.Files[i].SHA256 != ref.DigestStr() {
		t.Errorf("the archive lacks the image manifest %s, hashed to the pod's imageID", manifest)
	}
}

// TestCLICollectMissingPod: a pod that does not exist is exit 3 and no
// bundle.
func TestCLICollectMissingPod(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	out := filepath.Join(t.TempDir(), "bundle")
	r := kubetest.Kir{Kubeconfig: cluster(t).Kubeconfig}.Run(t, "collect", "pod", "no-such-pod", "-n", f.Namespace, "--out", out)
	if r.Code != cli.ExitNotFound || !strings.Contains(r.Stderr, "no-such-pod") {
		t.Errorf("exit %d, stderr %q, stdout %q; want %d naming the pod", r.Code, r.Stderr, r.Stdout, cli.ExitNotFound)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a bundle was left for a pod that does not exist: %v", err)
	}
}
