package cli_test

import (
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
)

// evidenceKey is a key pair written by Keygen, as responders have it.
type evidenceKey struct {
	priv, pub string
	signer    evidence.Signer
}

func newEvidenceKey(t *testing.T) evidenceKey {
	t.Helper()
	dir := t.TempDir()
	if err := evidence.Keygen(dir, evidence.AlgEd25519); err != nil {
		t.Fatal(err)
	}
	k := evidenceKey{priv: filepath.Join(dir, evidence.PrivateKeyFile), pub: filepath.Join(dir, evidence.PublicKeyFile)}
	s, err := evidence.LoadSigner(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	k.signer = s
	return k
}

// sealedBundle creates a bundle for incident inc-42 with two files and a
// contain entry, sealed with signer (nil: unsigned).
func sealedBundle(t *testing.T, signer evidence.Signer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := evidence.Create(dir, evidence.Options{Incident: "inc-42", Actor: "system:serviceaccount:ir:kir", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"logs/app.log": "GET /\nGET /etc/passwd\n",
		"pod.json":     `{"kind":"Pod"}` + "\n",
	} {
		if _, err := b.Put(name, strings.NewReader(content), evidence.Source{Kind: "log", Namespace: "shop", Pod: "web"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Custody(evidence.Entry{Action: "contain", Detail: map[string]string{"pod": "shop/web"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Seal(signer); err != nil {
		t.Fatal(err)
	}
	return dir
}

// flipByte changes the first byte of a sealed (read-only) file.
func flipByte(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func packed(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "inc-42.tar.gz")
	if err := evidence.Pack(dir, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyJSON(t *testing.T, args ...string) (int, *evidence.Report) {
	t.Helper()
	r := kir.Run(t, append([]string{"evidence", "verify", "-o", "json"}, args...)...)
	var rep evidence.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("verify -o json %q: exit %d, %v: %q %q", args, r.Code, err, r.Stdout, r.Stderr)
	}
	return r.Code, &rep
}

func TestEvidenceKeygen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	r := kir.Run(t, "evidence", "keygen", "--out", dir)
	if r.Code != cli.ExitOK {
		t.Fatalf("keygen: exit %d: %s", r.Code, r.Stderr)
	}
	keyPath, pubPath := filepath.Join(dir, evidence.PrivateKeyFile), filepath.Join(dir, evidence.PublicKeyFile)
	for path, want := range map[string]os.FileMode{keyPath: 0o600, pubPath: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		// The umask may take bits from the public key, never add any.
		if got := fi.Mode().Perm(); got != want && (path == keyPath || got&^want != 0 || got&0o400 == 0) {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	pub, err := evidence.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := evidence.KeyID(pub)
	if _, err := evidence.LoadSigner(keyPath); err != nil {
		t.Errorf("the private key does not load: %v", err)
	}
	for _, want := range []string{"key id:      " + id + " (ed25519)", keyPath, pubPath} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.Stdout)
		}
	}

	before := mustRead(t, keyPath) + mustRead(t, pubPath)
	r = kir.Run(t, "evidence", "keygen", "--out", dir, "--alg", "ecdsa-p256")
	if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "never overwrites") {
		t.Errorf("keygen over a key: exit %d, %q; want %d, refusing", r.Code, r.Stderr, cli.ExitUsage)
	}
	if after := mustRead(t, keyPath) + mustRead(t, pubPath); after != before {
		t.Error("keygen over a key changed the key files")
	}

	ecDir := filepath.Join(t.TempDir(), "ec")
	if r := kir.Run(t, "evidence", "keygen", "--alg", "ecdsa-p256", "--out", ecDir); r.Code != cli.ExitOK {
		t.Fatalf("keygen --alg ecdsa-p256: exit %d: %s", r.Code, r.Stderr)
	}
	if pub, err := evidence.LoadPublicKey(filepath.Join(ecDir, evidence.PublicKeyFile)); err != nil {
		t.Error(err)
	} else if _, ok := pub.(*ecdsa.PublicKey); !ok {
		t.Errorf("--alg ecdsa-p256 wrote a %T", pub)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", t.TempDir(), "--alg", "rsa"}, `invalid --alg "rsa"`},
		{nil, "give --out DIR"},
		{[]string{"--out", t.TempDir(), "extra"}, "keygen takes no arguments"},
	} {
		r := kir.Run(t, append([]string{"evidence", "keygen"}, tt.args...)...)
		if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, tt.want) {
			t.Errorf("keygen %q: exit %d, %q; want %d and %q", tt.args, r.Code, r.Stderr, cli.ExitUsage, tt.want)
		}
	}
}

func TestEvidenceVerify(t *testing.T) {
	t.Parallel()
	key, other := newEvidenceKey(t), newEvidenceKey(t)
	signed := sealedBundle(t, key.signer)
	tampered := sealedBundle(t, key.signer)
	flipByte(t, filepath.Join(tampered, "logs", "app.log"))

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   string
		problems []string // paths the problems name, with -o json
	}{
		{"signed, with the key", []string{signed, "--key", key.pub}, cli.ExitOK, []string{"VERIFIED", "incident inc-42"}, "", nil},
		{"signed, without a key", []string{signed}, cli.ExitUnsigned, []string{"SIGNATURE NOT CHECKED", "no --key was given", "--key kir.pub " + signed}, "signature was not checked", nil},
		{"another key", []string{signed, "--key", other.pub}, cli.ExitUnverified, []string{"statement.dsse.json: signature: not signed by key", "FAILED"}, "does not verify", []string{"statement.dsse.json"}},
		{"a byte flipped, with the key", []string{tampered, "--key", key.pub}, cli.ExitUnverified, []string{"logs/app.log: changed: sha256", "FAILED: 1 problem(s)"}, "1 problem(s)", []string{"logs/app.log"}},
		{"a byte flipped, without a key", []string{tampered}, cli.ExitUnverified, []string{"logs/app.log: changed"}, "", []string{"logs/app.log"}},
		{"archive, with the key", []string{packed(t, signed), "--key", key.pub}, cli.ExitOK, []string{"VERIFIED"}, "", nil},
		{"archive, without a key", []string{packed(t, signed)}, cli.ExitUnsigned, []string{"SIGNATURE NOT CHECKED"}, "", nil},
		{"archive of a changed bundle", []string{packed(t, tampered), "--key", key.pub}, cli.ExitUnverified, []string{"logs/app.log: changed"}, "", []string{"logs/app.log"}},
		{"unsigned bundle", []string{sealedBundle(t, nil)}, cli.ExitUnsigned, []string{"the bundle is not signed"}, "the bundle is not signed", nil},
		{"unsigned bundle, with a key", []string{sealedBundle(t, nil), "--key", key.pub}, cli.ExitUnverified, []string{"statement.dsse.json: missing"}, "", []string{"statement.dsse.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kir.Run(t, append([]string{"evidence", "verify"}, tt.args...)...)
			if r.Code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr: %s", r.Code, tt.code, r.Stdout, r.Stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.Stdout)
				}
			}
			if !strings.Contains(r.Stderr, tt.stderr) || (tt.code == cli.ExitOK) != (r.Stderr == "") {
				t.Errorf("stderr %q, want it to hold %q (and be empty only on success)", r.Stderr, tt.stderr)
			}

			got, rep := verifyJSON(t, tt.args...)
			if got != tt.code {
				t.Errorf("-o json: exit %d, want %d", got, tt.code)
			}
			var paths []string
			for _, p := range rep.Problems {
				paths = append(paths, p.Path)
			}
			if !slices.Equal(paths, tt.problems) {
				t.Errorf("-o json: problems %v, want problems naming %q", rep.Problems, tt.problems)
			}
			if rep.Problems == nil {
				t.Error(`-o json: "problems" is null, want []`)
			}
		})
	}
}

// TestEvidenceVerifyReadOnly: verify changes nothing in a bundle, not even
// by recording itself in its custody log.
func TestEvidenceVerifyReadOnly(t *testing.T) {
	t.Parallel()
	key := newEvidenceKey(t)
	dir := sealedBundle(t, key.signer)
	before := mustRead(t, filepath.Join(dir, evidence.CustodyFile))
	if r := kir.Run(t, "evidence", "verify", dir, "--key", key.pub); r.Code != cli.ExitOK {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if after := mustRead(t, filepath.Join(dir, evidence.CustodyFile)); after != before {
		t.Errorf("verify changed custody.log:\n%s", after)
	}
}

func TestEvidenceUsage(t *testing.T) {
	t.Parallel()
	dir := sealedBundle(t, nil)
	unsealed := filepath.Join(t.TempDir(), "unsealed")
	b, err := evidence.Create(unsealed, evidence.Options{Incident: "inc-42"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"verify"}, cli.ExitUsage, "verify takes DIR|FILE.tar.gz; got 0"},
		{[]string{"verify", dir, dir}, cli.ExitUsage, "got 2"},
		{[]string{"verify", dir, "-o", "xml"}, cli.ExitUsage, `invalid --output "xml"`},
		{[]string{"verify", dir, "--key", filepath.Join(dir, "pod.json")}, cli.ExitUsage, "no PKIX PEM block"},
		{[]string{"verify", filepath.Join(dir, "pod.json")}, cli.ExitUsage, "neither a directory nor a .tar.gz"},
		{[]string{"verify", filepath.Join(dir, "nope")}, cli.ExitNotFound, "no bundle at"},
		{[]string{"show"}, cli.ExitUsage, "show takes DIR|FILE.tar.gz"},
		{[]string{"show", filepath.Join(dir, "nope")}, cli.ExitNotFound, "no bundle at"},
		{[]string{"show", filepath.Join(dir, "pod.json")}, cli.ExitUsage, "neither a directory nor a .tar.gz"},
		{[]string{"push", unsealed, "127.0.0.1:1/x:y"}, cli.ExitUsage, "bundle is not sealed: seal it first"},
		{[]string{"push", dir}, cli.ExitUsage, "push takes DIR REF; got 1"},
		{[]string{"push", dir, "Not A Ref"}, cli.ExitUsage, "parsing reference"},
		{[]string{"push", dir, "127.0.0.1:1/x:y", "--key", filepath.Join(dir, "pod.json")}, cli.ExitUsage, "loading private key"},
		{[]string{"pull", "127.0.0.1:1/x:y"}, cli.ExitUsage, "give --out DIR"},
		{[]string{"pull", "--out", t.TempDir()}, cli.ExitUsage, "pull takes REF; got 0"},
	} {
		r := kir.Run(t, append([]string{"evidence"}, tt.args...)...)
		if r.Code != tt.code || !strings.Contains(r.Stderr, tt.want) {
			t.Errorf("evidence %q: exit %d, %q; want %d and %q", tt.args, r.Code, r.Stderr, tt.code, tt.want)
		}
	}
}

func TestEvidenceShow(t *testing.T) {
	t.Parallel()
	key := newEvidenceKey(t)
	dir := sealedBundle(t, key.signer)
	for _, path := range []string{dir, packed(t, dir)} {
		r := kir.Run(t, "evidence", "show", path)
		if r.Code != cli.ExitOK {
			t.Fatalf("show %s: exit %d: %s", path, r.Code, r.Stderr)
		}
		for _, re := range []string{
			`(?m)^incident: +inc-42$`,
			`(?m)^signed: +yes, by key ` + key.signer.KeyID() + `$`,
			`(?m)^files: +3, \d+ bytes$`, // two files and report.html
			`(?m)^custody \(3 entries\):$`,
			`(?m)^  1 +\S+ +create +system:serviceaccount:ir:kir +\{"incident":"inc-42"\}$`,
			`(?m)^  2 +\S+ +contain +system:serviceaccount:ir:kir +\{"pod":"shop/web"\}$`,
			`(?m)^  3 +\S+ +seal +`,
		} {
			if !regexp.MustCompile(re).MatchString(r.Stdout) {
				t.Errorf("show %s: stdout does not match %s:\n%s", path, re, r.Stdout)
			}
		}
	}

	r := kir.Run(t, "evidence", "show", dir, "-o", "json")
	var s evidence.Summary
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil || r.Code != cli.ExitOK {
		t.Fatalf("show -o json: exit %d, %v: %s", r.Code, err, r.Stdout)
	}
	var actions []string
	for _, e := range s.Custody {
		actions = append(actions, e.Action)
	}
	if s.Incident != "inc-42" || !slices.Equal(actions, []string{"create", "contain", "seal"}) || len(s.Files) != 3 {
		t.Errorf("show -o json: incident %q, actions %v, %d files", s.Incident, actions, len(s.Files))
	}
}

// TestEvidencePushPull pushes bundles to a registry on 127.0.0.1 and pulls
// them back, as responders ship evidence off a compromised network.
func TestEvidencePushPull(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	key, other := newEvidenceKey(t), newEvidenceKey(t)
	dir := sealedBundle(t, key.signer)
	custody := filepath.Join(dir, evidence.CustodyFile)
	sealedLog := mustRead(t, custody)

	// Another key than the bundle's: refused before anything is sent.
	r := kir.Run(t, "evidence", "push", dir, host+"/evidence/inc-42:wrong", "--key", other.priv)
	if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "was signed by key "+key.signer.KeyID()) {
		t.Errorf("push with another key: exit %d, %q; want %d", r.Code, r.Stderr, cli.ExitUsage)
	}
	if mustRead(t, custody) != sealedLog {
		t.Error("push with another key changed custody.log")
	}
	if r := kir.Run(t, "evidence", "pull", host+"/evidence/inc-42:wrong", "--out", filepath.Join(t.TempDir(), "x")); r.Code != cli.ExitNotFound {
		t.Errorf("pull of what was refused: exit %d, %q; want %d", r.Code, r.Stderr, cli.ExitNotFound)
	}

	// With the key: pushed, then recorded in the local bundle only.
	r = kir.Run(t, "evidence", "push", dir, host+"/evidence/inc-42:v1", "--key", key.priv)
	if r.Code != cli.ExitOK {
		t.Fatalf("push: exit %d: %s", r.Code, r.Stderr)
	}
	digestRef := strings.TrimSpace(r.Stdout)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(host) + `/evidence/inc-42@sha256:[0-9a-f]{64}$`).MatchString(digestRef) {
		t.Fatalf("push printed %q, want the digest reference", r.Stdout)
	}
	code, rep := verifyJSON(t, dir, "--key", key.pub)
	if code != cli.ExitOK || rep.PostSeal != 1 || !rep.SignatureVerified {
		t.Errorf("local bundle after push: exit %d, %d entries after sealing, signature verified %v: %v", code, rep.PostSeal, rep.SignatureVerified, rep.Problems)
	}
	s, err := evidence.Show(dir)
	if err != nil {
		t.Fatal(err)
	}
	last := s.Custody[len(s.Custody)-1]
	detail, _ := json.Marshal(last.Detail)
	digest := digestRef[strings.Index(digestRef, "@")+1:]
	if last.Action != "push" || !last.PostSeal || last.KeyID != key.signer.KeyID() ||
		string(detail) != `{"digest":"`+digest+`","ref":"`+host+`/evidence/inc-42:v1"}` {
		t.Errorf("last custody entry: %+v, detail %s", last, detail)
	}
	if r := kir.Run(t, "evidence", "show", dir); !strings.Contains(r.Stdout, "(after sealing, signed by key "+key.signer.KeyID()[:12]) {
		t.Errorf("show does not mark the push as appended after sealing:\n%s", r.Stdout)
	}

	// Pulled by digest, the bundle is the sealed one: it verifies with
	// the key and has no push entry.
	pulled := filepath.Join(t.TempDir(), "pulled")
	r = kir.Run(t, "evidence", "pull", digestRef, "--out", pulled)
	if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, "pulled "+digestRef+" into "+pulled) || !strings.Contains(r.Stdout, "SIGNATURE NOT CHECKED") {
		t.Fatalf("pull: exit %d\nstdout:\n%s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	code, rep = verifyJSON(t, pulled, "--key", key.pub)
	if code != cli.ExitOK || rep.PostSeal != 0 || rep.Incident != "inc-42" {
		t.Errorf("pulled bundle: exit %d, %d entries after sealing, incident %q: %v", code, rep.PostSeal, rep.Incident, rep.Problems)
	}
	if got := mustRead(t, filepath.Join(pulled, evidence.CustodyFile)); got != sealedLog {
		t.Errorf("pulled custody.log is not the sealed one:\n%s", got)
	}
	if r := kir.Run(t, "evidence", "pull", digestRef, "--out", pulled); r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "not empty") {
		t.Errorf("pull into a full directory: exit %d, %q", r.Code, r.Stderr)
	}

	// KIR_SIGNING_KEY stands for --key; a second push is a second entry.
	withKey := kubetest.Kir{Env: []string{"KIR_SIGNING_KEY=" + key.priv}}
	if r := withKey.Run(t, "evidence", "push", dir, host+"/evidence/inc-42:v2"); r.Code != cli.ExitOK {
		t.Fatalf("push with KIR_SIGNING_KEY: exit %d: %s", r.Code, r.Stderr)
	}
	if code, rep := verifyJSON(t, dir, "--key", key.pub); code != cli.ExitOK || rep.PostSeal != 2 {
		t.Errorf("after a second push: exit %d, %d entries after sealing: %v", code, rep.PostSeal, rep.Problems)
	}

	// Without a key, the push is not recorded.
	before := mustRead(t, custody)
	r = kir.Run(t, "evidence", "push", dir, host+"/evidence/inc-42:v3")
	if r.Code != cli.ExitOK || !strings.Contains(r.Stderr, "not recorded") {
		t.Errorf("push without a key: exit %d, %q", r.Code, r.Stderr)
	}
	if mustRead(t, custody) != before {
		t.Error("push without a key changed custody.log")
	}

	// A bundle changed after sealing is pushed as it is; pull says it
	// does not verify.
	tampered := sealedBundle(t, key.signer)
	flipByte(t, filepath.Join(tampered, "pod.json"))
	if r := kir.Run(t, "evidence", "push", tampered, host+"/evidence/inc-43:v1"); r.Code != cli.ExitOK {
		t.Fatalf("push: exit %d: %s", r.Code, r.Stderr)
	}
	r = kir.Run(t, "evidence", "pull", host+"/evidence/inc-43:v1", "--out", filepath.Join(t.TempDir(), "t"))
	if r.Code != cli.ExitUnverified || !strings.Contains(r.Stdout, "pod.json: changed") || !strings.Contains(r.Stderr, "does not verify") {
		t.Errorf("pull of a changed bundle: exit %d, want %d\nstdout:\n%s\nstderr: %s", r.Code, cli.ExitUnverified, r.Stdout, r.Stderr)
	}
}

func TestEvidencePushArchive(t *testing.T) {
	t.Parallel()
	archive := packed(t, sealedBundle(t, nil))
	r := kir.Run(t, "evidence", "push", archive, "127.0.0.1:1/evidence/x:y")
	if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, "not a directory") {
		t.Errorf("push of an archive: exit %d, %q", r.Code, r.Stderr)
	}
}
