package evidence_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/evidence"
)

// flipMiddle changes one bit of the middle byte. In JSON that always
// changes a value or breaks the syntax: whitespace turns into
// non-whitespace, quotes and brackets into other characters.
func flipMiddle(b []byte) []byte {
	b[len(b)/2] ^= 1
	return b
}

// TestVerifyOneByte changes one byte of each file of a signed bundle in
// turn: Verify must fail and name that file.
func TestVerifyOneByte(t *testing.T) {
	t.Parallel()
	signer, pub := newKey(t, evidence.AlgEd25519)
	base := makeBundle(t, signer)
	var names []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(base, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, own := range []string{evidence.ManifestFile, evidence.CustodyFile, evidence.StatementFile, evidence.EnvelopeFile, evidence.ReportFile} {
		if !slices.Contains(names, own) {
			t.Fatalf("the bundle has no %s", own)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if name == "logs/sidecar.previous.log" {
				t.Skip("empty: no byte to change")
			}
			dir := copyDir(t, base)
			rewrite(t, filepath.Join(dir, filepath.FromSlash(name)), flipMiddle)
			for _, key := range []crypto.PublicKey{pub, nil} {
				r := mustVerify(t, dir, key)
				if r.Outcome() != evidence.Failed {
					t.Errorf("key %v: outcome %s, want failed", key != nil, r.Outcome())
				}
				if len(r.Problems) == 0 || !slices.ContainsFunc(r.Problems, func(p evidence.Problem) bool { return p.Path == name }) {
					t.Errorf("key %v: no problem names %s:%s", key != nil, name, describe(r))
				}
				for _, p := range r.Problems {
					if p.Path != name {
						t.Errorf("key %v: a problem names another file than %s: %s", key != nil, name, p)
					}
				}
			}
		})
	}
}

func TestVerifyTampered(t *testing.T) {
	t.Parallel()
	signer, pub := newKey(t, evidence.AlgEd25519)
	_, otherPub := newKey(t, evidence.AlgEd25519)
	base := makeBundle(t, signer)
	// Another bundle, signed with the same key: its signature is valid,
	// but for other evidence.
	other := func() string {
		dir := filepath.Join(t.TempDir(), "other")
		b, err := evidence.Create(dir, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put("logs/app.log", strings.NewReader("nothing to see\n"), evidence.Source{Kind: "log"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Seal(signer); err != nil {
			t.Fatal(err)
		}
		return dir
	}()
	custodyLines := func(dir string, f func([][]byte) [][]byte) {
		rewrite(t, filepath.Join(dir, evidence.CustodyFile), func(b []byte) []byte {
			lines := bytes.SplitAfter(b, []byte("\n"))
			return bytes.Join(f(lines[:len(lines)-1]), nil)
		})
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		key    crypto.PublicKey
		want   []problem
	}{
		{
			name:   "evidence file deleted",
			tamper: func(t *testing.T, dir string) { remove(t, dir, "logs/app.log") },
			key:    pub,
			want:   []problem{{evidence.ProblemMissing, "logs/app.log", 0}},
		},
		{
			name:   "report deleted",
			tamper: func(t *testing.T, dir string) { remove(t, dir, evidence.ReportFile) },
			key:    pub,
			want:   []problem{{evidence.ProblemMissing, evidence.ReportFile, 0}},
		},
		{
			name:   "manifest deleted",
			tamper: func(t *testing.T, dir string) { remove(t, dir, evidence.ManifestFile) },
			key:    pub,
			want:   []problem{{evidence.ProblemMissing, evidence.ManifestFile, 0}},
		},
		{
			name:   "statement deleted",
			tamper: func(t *testing.T, dir string) { remove(t, dir, evidence.StatementFile) },
			key:    pub,
			want:   []problem{{evidence.ProblemMissing, evidence.StatementFile, 0}},
		},
		{
			name:   "custody log deleted",
			tamper: func(t *testing.T, dir string) { remove(t, dir, evidence.CustodyFile) },
			key:    pub,
			want:   []problem{{evidence.ProblemMissing, evidence.CustodyFile, 0}},
		},
		{
			name:   "signature deleted, verified with the key",
			tamper: func(t *testing.T, dir string) { remove(t, dir, evidence.EnvelopeFile) },
			key:    pub,
			want:   []problem{{evidence.ProblemMissing, evidence.EnvelopeFile, 0}},
		},
		{
			// The seal entry names the key: removing the signature shows
			// even to a verifier without it.
			name:   "signature deleted, verified without a key",
			tamper: func(t *testing.T, dir string) { remove(t, dir, evidence.EnvelopeFile) },
			want:   []problem{{evidence.ProblemMissing, evidence.EnvelopeFile, 0}},
		},
		{
			name:   "file added",
			tamper: func(t *testing.T, dir string) { write(t, dir, "logs/planted.log", "hello\n") },
			key:    pub,
			want:   []problem{{evidence.ProblemAdded, "logs/planted.log", 0}},
		},
		{
			name:   "file added at the root",
			tamper: func(t *testing.T, dir string) { write(t, dir, "README", "hello\n") },
			key:    pub,
			want:   []problem{{evidence.ProblemAdded, "README", 0}},
		},
		{
			name: "symlink added",
			tamper: func(t *testing.T, dir string) {
				if err := os.Symlink("/etc/passwd", filepath.Join(dir, "logs", "passwd")); err != nil {
					t.Fatal(err)
				}
			},
			key:  pub,
			want: []problem{{evidence.ProblemInvalid, "logs/passwd", 0}},
		},
		{
			name: "evidence file replaced",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, filepath.Join(dir, "logs", "app.log"), func([]byte) []byte { return []byte("all quiet\n") })
			},
			key:  pub,
			want: []problem{{evidence.ProblemChanged, "logs/app.log", 0}},
		},
		{
			name: "custody entry edited",
			tamper: func(t *testing.T, dir string) {
				custodyLines(dir, func(lines [][]byte) [][]byte {
					lines[1] = bytes.Replace(lines[1], []byte("kir-quarantine-1234"), []byte("kir-quarantine-9999"), 1)
					return lines
				})
			},
			key: pub,
			want: []problem{
				{evidence.ProblemChanged, evidence.CustodyFile, 0},
				{evidence.ProblemCustody, evidence.CustodyFile, 3}, // its prev no longer matches line 2
			},
		},
		{
			name: "custody entry removed",
			tamper: func(t *testing.T, dir string) {
				custodyLines(dir, func(lines [][]byte) [][]byte { return slices.Delete(lines, 1, 2) })
			},
			key: pub,
			want: []problem{
				{evidence.ProblemChanged, evidence.CustodyFile, 0},
				{evidence.ProblemCustody, evidence.CustodyFile, 2}, // seq 3 where 2 belongs
			},
		},
		{
			name: "last sealed custody entry removed",
			tamper: func(t *testing.T, dir string) {
				custodyLines(dir, func(lines [][]byte) [][]byte { return lines[:len(lines)-1] })
			},
			key:  pub,
			want: []problem{{evidence.ProblemChanged, evidence.CustodyFile, 0}},
		},
		{
			name: "signature swapped from another bundle",
			tamper: func(t *testing.T, dir string) {
				b, err := os.ReadFile(filepath.Join(other, evidence.EnvelopeFile))
				if err != nil {
					t.Fatal(err)
				}
				rewrite(t, filepath.Join(dir, evidence.EnvelopeFile), func([]byte) []byte { return b })
			},
			key:  pub,
			want: []problem{{evidence.ProblemSignature, evidence.EnvelopeFile, 0}},
		},
		{
			name: "signature value swapped from another bundle",
			tamper: func(t *testing.T, dir string) {
				var theirs map[string]any
				readJSON(t, filepath.Join(other, evidence.EnvelopeFile), &theirs)
				rewrite(t, filepath.Join(dir, evidence.EnvelopeFile), func(b []byte) []byte {
					var ours map[string]any
					if err := json.Unmarshal(b, &ours); err != nil {
						t.Fatal(err)
					}
					ours["signatures"] = theirs["signatures"]
					out, err := json.Marshal(ours)
					if err != nil {
						t.Fatal(err)
					}
					return out
				})
			},
			key:  pub,
			want: []problem{{evidence.ProblemSignature, evidence.EnvelopeFile, 0}},
		},
		{
			name:   "wrong public key",
			tamper: func(t *testing.T, dir string) {},
			key:    otherPub,
			want:   []problem{{evidence.ProblemSignature, evidence.EnvelopeFile, 0}},
		},
		{
			// What someone without the key can do: change a file and
			// rewrite manifest.json and statement.json to agree. The
			// signed statement, authentic by the key, shows what changed.
			name: "evidence, manifest and statement rewritten to agree",
			tamper: func(t *testing.T, dir string) {
				forge(t, dir, "logs/app.log", "all quiet\n")
			},
			key: pub,
			want: []problem{
				{evidence.ProblemChanged, "logs/app.log", 0},
				{evidence.ProblemChanged, evidence.ManifestFile, 0},
				{evidence.ProblemChanged, evidence.StatementFile, 0},
			},
		},
		{
			// Without the key, which statement is authentic is unknown;
			// that they differ is not.
			name: "evidence, manifest and statement rewritten to agree, no key",
			tamper: func(t *testing.T, dir string) {
				forge(t, dir, "logs/app.log", "all quiet\n")
			},
			want: []problem{{evidence.ProblemSignature, evidence.EnvelopeFile, 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyDir(t, base)
			tc.tamper(t, dir)
			r := mustVerify(t, dir, tc.key)
			if diff := cmp.Diff(tc.want, problems(r)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nall:%s", diff, describe(r))
			}
			if r.Outcome() != evidence.Failed {
				t.Errorf("outcome %s, want failed", r.Outcome())
			}
			for _, p := range r.Problems {
				if p.Message == "" {
					t.Errorf("problem without a message: %+v", p)
				}
			}
		})
	}
}

func TestVerifyWithoutKey(t *testing.T) {
	t.Parallel()
	signer, pub := newKey(t, evidence.AlgECDSAP256)
	signed := makeBundle(t, signer)
	unsigned := makeBundle(t, nil)
	for _, tc := range []struct {
		name     string
		dir      string
		key      crypto.PublicKey
		want     evidence.Outcome
		problems []problem
	}{
		{"signed, no key", signed, nil, evidence.NotChecked, nil},
		{"signed, key", signed, pub, evidence.Verified, nil},
		{"unsigned, no key", unsigned, nil, evidence.NotChecked, nil},
		{"unsigned, key", unsigned, pub, evidence.Failed, []problem{{evidence.ProblemMissing, evidence.EnvelopeFile, 0}}},
	} {
		r := mustVerify(t, tc.dir, tc.key)
		if r.Outcome() != tc.want {
			t.Errorf("%s: outcome %s, want %s:%s", tc.name, r.Outcome(), tc.want, describe(r))
		}
		if r.SignatureVerified != (tc.want == evidence.Verified) {
			t.Errorf("%s: SignatureVerified %v", tc.name, r.SignatureVerified)
		}
		if diff := cmp.Diff(tc.problems, problems(r)); diff != "" {
			t.Errorf("%s: problems (-want +got):\n%s", tc.name, diff)
		}
	}
}

func remove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
}

// forge replaces a file's content and rewrites manifest.json and
// statement.json to agree with it, as someone without the key would.
func forge(t *testing.T, dir, name, content string) {
	t.Helper()
	rewrite(t, filepath.Join(dir, filepath.FromSlash(name)), func([]byte) []byte { return []byte(content) })
	var m evidence.Manifest
	readJSON(t, filepath.Join(dir, evidence.ManifestFile), &m)
	for i := range m.Files {
		if m.Files[i].Path == name {
			m.Files[i].SHA256, m.Files[i].Size = sha256Hex([]byte(content)), int64(len(content))
		}
	}
	mb := marshalIndent(t, m)
	rewrite(t, filepath.Join(dir, evidence.ManifestFile), func([]byte) []byte { return mb })
	var st evidence.Statement
	readJSON(t, filepath.Join(dir, evidence.StatementFile), &st)
	for i, s := range st.Subject {
		switch s.Name {
		case name:
			st.Subject[i].Digest["sha256"] = sha256Hex([]byte(content))
		case evidence.ManifestFile:
			st.Subject[i].Digest["sha256"] = sha256Hex(mb)
		}
	}
	st.Predicate.Bytes += int64(len(content)) - int64(len(evidenceFiles[name]))
	sb := marshalIndent(t, st)
	rewrite(t, filepath.Join(dir, evidence.StatementFile), func([]byte) []byte { return sb })
}

func marshalIndent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
