package evidence_test

import (
	"crypto"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kir.dev/kir/evidence"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

// clock returns a clock that advances one second per call.
func clock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

// newKey writes a key pair of alg with Keygen and loads it back, as the CLI
// does.
func newKey(t testing.TB, alg string) (evidence.Signer, crypto.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	if err := evidence.Keygen(dir, alg); err != nil {
		t.Fatal(err)
	}
	s, err := evidence.LoadSigner(filepath.Join(dir, evidence.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := evidence.LoadPublicKey(filepath.Join(dir, evidence.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

func testOptions() evidence.Options {
	return evidence.Options{
		Incident: "inc-42", Actor: "system:serviceaccount:ir:kir", Version: "v0.9.0-test",
		Now: clock(), OSUser: "responder", Host: "laptop-7",
	}
}

// evidenceFiles are what makeBundle puts, as collectors would.
var evidenceFiles = map[string]string{
	"pod.json":                           `{"kind":"Pod","metadata":{"name":"web-7f9c"}}` + "\n",
	"logs/app.log":                       "2026-01-02T03:04:05Z GET /\n2026-01-02T03:04:06Z GET /etc/passwd\n",
	"logs/sidecar.previous.log":          "",
	"events/pod.json":                    `{"items":[]}` + "\n",
	"manifests/ReplicaSet/web-7f9c.json": `{"kind":"ReplicaSet"}` + "\n",
}

// custodyEntries are what makeBundle records between create and seal.
var custodyEntries = []evidence.Entry{
	{Action: "contain", Detail: map[string]any{"pod": "shop/web-7f9c", "policy": "kir-quarantine-1234"}},
	{Action: "collect", Detail: map[string]any{"pod": "shop/web-7f9c", "files": 5}},
	{Action: "note", Detail: map[string]string{"part": "logs", "note": "sidecar never restarted"}},
	{Action: "run-step", Detail: map[string]any{"step": "cordon", "node": "node-1", "changed": true}},
}

// makeBundle creates and seals a bundle in a new directory.
func makeBundle(t testing.TB, signer evidence.Signer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := evidence.Create(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range evidenceFiles {
		src := evidence.Source{Kind: "log", Namespace: "shop", Pod: "web-7f9c", AuditID: "audit-" + name}
		if _, err := b.Put(name, strings.NewReader(content), src); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range custodyEntries {
		if err := b.Custody(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Seal(signer); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyDir copies a bundle so that a test can tamper with its own copy.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// rewrite replaces a read-only file of a bundle, as a tamperer would.
func rewrite(t testing.TB, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// problem is a Problem without its message, for comparing.
type problem struct {
	Kind evidence.ProblemKind
	Path string
	Line int
}

func problems(r *evidence.Report) []problem {
	var ps []problem
	for _, p := range r.Problems {
		ps = append(ps, problem{p.Kind, p.Path, p.Line})
	}
	return ps
}

func mustVerify(t testing.TB, path string, pub crypto.PublicKey) *evidence.Report {
	t.Helper()
	r, err := evidence.Verify(path, pub)
	if err != nil {
		t.Fatalf("Verify(%s): %v", path, err)
	}
	return r
}

// describe prints a report's problems for failure messages.
func describe(r *evidence.Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "\n\t%s", p)
	}
	return b.String()
}
