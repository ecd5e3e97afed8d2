package collect_test

import (
	"bytes"
	"crypto"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"kir.dev/kir/collect"
	"kir.dev/kir/evidence"
	"kir.dev/kir/cmd/kir/internal/cli"
)

// cliMu serialises in-process runs of the command line: urfave/cli v2
// writes to its package-level help flag while parsing.
var cliMu sync.Mutex

// kir runs the command line in-process against the test cluster with its
// own state directory and returns the exit code, stdout and stderr.
func kir(t *testing.T, state string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	argv := append(append([]string{"kir"}, args...), "--kubeconfig", cluster.Kubeconfig, "--state-dir", state)
	cliMu.Lock()
	defer cliMu.Unlock()
	code := cli.Run(t.Context(), argv, &out, &errOut)
	return code, out.String(), errOut.String()
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
	w := newWorld(t, "cli")
	pod := w.webApp(t)
	key, pub := keyPair(t)
	state := t.TempDir()
	out := filepath.Join(t.TempDir(), "bundle")

	code, stdout, stderr := kir(t, state, "collect", "pod", pod.Name, "-n", w.ns, "--out", out, "--key", key, "--incident", "inc-collect")
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

	dir := collect.PodDir(w.ns, pod.Name)
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
	checkLayout(t, filepath.Join(out, dir, "images/0"), appImage.DigestStr(), false)

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
			if bytes.Contains(b, []byte(w.marker)) {
				t.Errorf("%s holds the Secret's value", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(stdout+stderr, w.marker) {
		t.Error("kir printed the Secret's value")
	}
}

// TestCLICollectPodArchiveFromDistribution collects a pod whose image is
// in a Distribution registry (its own process) into a .tar.gz, unsigned.
func TestCLICollectPodArchiveFromDistribution(t *testing.T) {
	t.Parallel()
	host := startDistribution(t)
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := push(host+"/evidence/cli:1", img)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "cli-archive")
	pod := w.simplePod(t, "pulled", host+"/evidence/cli:1", "docker-pullable://"+ref.String())
	state := t.TempDir()
	archive := filepath.Join(t.TempDir(), "evidence.tar.gz")

	code, stdout, stderr := kir(t, state, "collect", "pod", "-n", w.ns, "-l", "pod=pulled", "--out", archive)
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
	manifest := collect.PodDir(w.ns, pod.Name) + "/images/0/blobs/sha256/" + strings.TrimPrefix(ref.DigestStr(), "sha256:")
	if i := slices.IndexFunc(sum.Files, func(f evidence.File) bool { return f.Path == manifest }); i < 0 || "sha256:"+sum.Files[i].SHA256 != ref.DigestStr() {
		t.Errorf("the archive lacks the image manifest %s, hashed to the pod's imageID", manifest)
	}
}

// TestCLICollectMissingPod: a pod that does not exist is exit 3 and no
// bundle.
func TestCLICollectMissingPod(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "cli-missing")
	out := filepath.Join(t.TempDir(), "bundle")
	code, stdout, stderr := kir(t, t.TempDir(), "collect", "pod", "no-such-pod", "-n", w.ns, "--out", out)
	if code != cli.ExitNotFound || !strings.Contains(stderr, "no-such-pod") {
		t.Errorf("exit %d, stderr %q, stdout %q; want %d naming the pod", code, stderr, stdout, cli.ExitNotFound)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a bundle was left for a pod that does not exist: %v", err)
	}
}
