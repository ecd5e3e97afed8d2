package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
)

// TestCosign proves that stock cosign, a verifier kir does not control,
// checks sealed files against statement.dsse.json with the command
// evidence/doc.go documents, for both kinds of key, without the network:
// it accepts every sealed file, and refuses a file changed by one byte and
// another key.
func TestCosign(t *testing.T) {
	bin := cosignBinary(t)
	for _, alg := range []string{evidence.AlgEd25519, evidence.AlgECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			signer, pub := keyFile(t, alg)
			_, otherPub := keyFile(t, alg)
			dir := makeBundle(t, signer)
			path := func(name string) string { return filepath.Join(dir, filepath.FromSlash(name)) }
			m := readManifest(t, dir)
			// Entries appended after sealing are not in the statement: the
			// sealed part of custody.log is what cosign can check.
			err := evidence.AppendCustody(dir, evidence.Entry{Action: "export", Detail: map[string]string{"to": "case-42.tar.gz"}}, signer)
			if err != nil {
				t.Fatal(err)
			}
			sealedCustody := prefix(t, path(evidence.CustodyFile), m.Custody.Size)
			var logDigest string
			for _, f := range m.Files {
				if f.Path == "logs/app.log" {
					logDigest = f.SHA256
				}
			}

			const (
				badDigest = "no matching subject digest found"
				badSig    = "accepted signatures do not match threshold"
			)
			tests := []struct {
				name    string
				pub     string
				args    []string // what cosign checks: a file, or a digest
				wantErr string   // empty when cosign must verify
			}{
				{"log", pub, []string{path("logs/app.log")}, ""},
				{"empty log", pub, []string{path("logs/sidecar.previous.log")}, ""},
				{"nested manifest", pub, []string{path("manifests/ReplicaSet/web-7f9c.json")}, ""},
				{"manifest.json", pub, []string{path(evidence.ManifestFile)}, ""},
				{"sealed part of custody.log", pub, []string{sealedCustody}, ""},
				{"digest from manifest.json", pub, []string{"--digest", logDigest, "--digestAlg", "sha256"}, ""},

				{"log changed by one byte", pub, []string{flipByte(t, path("logs/app.log"))}, badDigest},
				{"empty log with one byte", pub, []string{flipByte(t, path("logs/sidecar.previous.log"))}, badDigest},
				{"manifest.json changed by one byte", pub, []string{flipByte(t, path(evidence.ManifestFile))}, badDigest},
				{"custody.log with entries appended", pub, []string{path(evidence.CustodyFile)}, badDigest},
				{"log with another key", otherPub, []string{path("logs/app.log")}, badSig},
				{"manifest.json with another key", otherPub, []string{path(evidence.ManifestFile)}, badSig},
			}
			c := newCosign(t, bin)
			for _, tt := range tests {
				out, err := c.verify(t, tt.pub, path(evidence.EnvelopeFile), tt.args...)
				switch {
				case tt.wantErr == "" && (err != nil || !strings.Contains(out, "Verified OK")):
					t.Errorf("%s: cosign refused it: %v\n%s", tt.name, err, out)
				case tt.wantErr != "" && err == nil:
					t.Errorf("%s: cosign accepted it:\n%s", tt.name, out)
				case tt.wantErr != "" && !strings.Contains(out, tt.wantErr):
					t.Errorf("%s: cosign refused it, but not with %q: %v\n%s", tt.name, tt.wantErr, err, out)
				}
			}
			if n := c.requests.Load(); n != 0 {
				t.Errorf("cosign tried to reach the network %d times; it must verify offline", n)
			}
		})
	}
}

// cosignBinary returns the cosign that internal/kubetest/tools/build.sh
// builds. Missing, it fails the test: the second verifier is never skipped.
func cosignBinary(t *testing.T) string {
	t.Helper()
	bin, err := kubetest.Binary("cosign")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// keyFile makes a key pair with Keygen and returns its signer and the path
// of kir.pub, the file cosign is given.
func keyFile(t *testing.T, alg string) (evidence.Signer, string) {
	t.Helper()
	dir := t.TempDir()
	if err := evidence.Keygen(dir, alg); err != nil {
		t.Fatal(err)
	}
	s, err := evidence.LoadSigner(filepath.Join(dir, evidence.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return s, filepath.Join(dir, evidence.PublicKeyFile)
}

func readManifest(t *testing.T, dir string) evidence.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, evidence.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m evidence.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// prefix copies the first n bytes of path into a new file, as an auditor
// would with head -c.
func prefix(t *testing.T, path string, n int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < n {
		t.Fatalf("%s has %d bytes, fewer than %d", path, len(b), n)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path)+".sealed")
	if err := os.WriteFile(out, b[:n], 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// flipByte copies path with one byte changed (an empty file gets one byte)
// and returns the copy's path: the bundle itself stays intact.
func flipByte(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		b = []byte{'\n'}
	} else {
		b[len(b)/2] ^= 1
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// cosign runs cosign with an environment of its own: no COSIGN_* variable
// of the user's (cosign reads every flag from one), an empty home, and
// every HTTP(S) request sent to a proxy that counts it and answers nothing,
// so that any attempt to reach the network shows.
type cosign struct {
	bin      string
	env      []string
	requests atomic.Int64
}

func newCosign(t *testing.T, bin string) *cosign {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := &cosign{bin: bin}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.requests.Add(1)
			conn.Close()
		}
	}()
	proxy := "http://" + l.Addr().String()
	c.env = []string{
		"HOME=" + t.TempDir(),
		"HTTPS_PROXY=" + proxy,
		"HTTP_PROXY=" + proxy,
		// As documented: without it, cosign fetches Sigstore's trusted
		// root over TUF before verifying, even with a key.
		"SIGSTORE_REKOR_PUBLIC_KEY=/dev/null",
	}
	return c
}

// verify runs the documented command and returns its combined output.
func (c *cosign) verify(t *testing.T, pub, envelope string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	args = append([]string{"verify-blob-attestation",
		"--key", pub, "--signature", envelope,
		"--type", evidence.PredicateType, "--insecure-ignore-tlog"}, args...)
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
