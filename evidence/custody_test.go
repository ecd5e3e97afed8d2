package evidence_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/evidence"
)

// postSeal are entries recorded after sealing, on other machines.
var postSeal = []evidence.Entry{
	{Action: "release", Detail: map[string]string{"pod": "shop/web-7f9c"}, Actor: "alice@example.com", Version: "v0.9.1"},
	{Action: "export", Detail: map[string]string{"to": "case-42.tar.gz"}, Actor: "alice@example.com", Version: "v0.9.1"},
	{Action: "push", Detail: map[string]string{"ref": "registry.example/evidence:inc-42"}, Actor: "bob@example.com", Version: "v0.9.1"},
}

func TestAppendCustody(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{evidence.AlgEd25519, evidence.AlgECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			signer, pub := newKey(t, alg)
			dir := makeBundle(t, signer)
			sealed := custodyLines(t, dir)
			for _, e := range postSeal {
				if err := evidence.AppendCustody(dir, e, signer); err != nil {
					t.Fatal(err)
				}
			}
			lines := custodyLines(t, dir)
			if diff := cmp.Diff(sealed, lines[:len(sealed)]); diff != "" {
				t.Errorf("the sealed lines changed (-before +after):\n%s", diff)
			}
			fi, err := os.Stat(filepath.Join(dir, evidence.CustodyFile))
			if err != nil || fi.Mode().Perm() != 0o444 {
				t.Errorf("custody.log mode after appending: %v, %v; want 0444", fi.Mode(), err)
			}

			r := mustVerify(t, dir, pub)
			if r.Outcome() != evidence.Verified || r.PostSeal != len(postSeal) || r.CustodyEntries != len(lines) {
				t.Errorf("Verify: outcome %s, %d entries of which %d post-seal; want verified, %d and %d:%s",
					r.Outcome(), r.CustodyEntries, r.PostSeal, len(lines), len(postSeal), describe(r))
			}
			archive := filepath.Join(t.TempDir(), "b.tar.gz")
			if err := evidence.Pack(dir, archive); err != nil {
				t.Fatal(err)
			}
			if r := mustVerify(t, archive, pub); r.Outcome() != evidence.Verified {
				t.Errorf("Verify of the archive: %s:%s", r.Outcome(), describe(r))
			}

			s, err := evidence.Show(dir)
			if err != nil {
				t.Fatal(err)
			}
			type shown struct {
				Seq           int
				Action, Actor string
				PostSeal      bool
				KeyID         string
			}
			var got, want []shown
			for _, rec := range s.Custody {
				if rec.PostSeal {
					got = append(got, shown{rec.Seq, rec.Action, rec.Actor, rec.PostSeal, rec.KeyID})
				}
			}
			for i, e := range postSeal {
				want = append(want, shown{len(sealed) + i + 1, e.Action, e.Actor, true, signer.KeyID()})
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Show: post-seal entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendCustodyTampered(t *testing.T) {
	t.Parallel()
	signer, pub := newKey(t, evidence.AlgEd25519)
	other, _ := newKey(t, evidence.AlgEd25519)
	base := makeBundle(t, signer)
	for _, e := range postSeal {
		if err := evidence.AppendCustody(base, e, signer); err != nil {
			t.Fatal(err)
		}
	}
	n := len(custodyLines(t, base))
	editLine := func(i int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, evidence.CustodyFile), func(b []byte) []byte {
				lines := bytes.SplitAfter(b, []byte("\n"))
				lines[i-1] = bytes.Replace(lines[i-1], []byte("@example.com"), []byte("@example.org"), 1)
				return bytes.Join(lines, nil)
			})
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []problem
	}{
		{
			name:   "last entry edited",
			tamper: editLine(n),
			want:   []problem{{evidence.ProblemSignature, evidence.CustodyFile, n}},
		},
		{
			name:   "an earlier post-seal entry edited",
			tamper: editLine(n - 1),
			want: []problem{
				{evidence.ProblemSignature, evidence.CustodyFile, n - 1},
				{evidence.ProblemCustody, evidence.CustodyFile, n}, // its prev no longer matches
			},
		},
		{
			name: "entry appended without a signature",
			tamper: func(t *testing.T, dir string) {
				// AppendCustody refuses, so write the line by hand.
				path := filepath.Join(dir, evidence.CustodyFile)
				lines := custodyLines(t, dir)
				last := lines[len(lines)-1]
				rewrite(t, path, func(b []byte) []byte {
					return append(b, []byte(`{"seq":`+strconv.Itoa(n+1)+`,"time":"2026-02-01T00:00:00Z","type":"note","data":{"actor":"mallory"},"prev":"`+sha256Hex(last)+`"}`+"\n")...)
				})
			},
			want: []problem{{evidence.ProblemSignature, evidence.CustodyFile, n + 1}},
		},
		{
			// AppendCustody refuses another key (ErrWrongKey): sign with
			// the right one, then claim the other's key id.
			name: "entry appended with another key",
			tamper: func(t *testing.T, dir string) {
				if err := evidence.AppendCustody(dir, evidence.Entry{Action: "note"}, signer); err != nil {
					t.Fatal(err)
				}
				rewrite(t, filepath.Join(dir, evidence.CustodyFile), func(b []byte) []byte {
					i := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
					return append(b[:i:i], bytes.ReplaceAll(b[i:], []byte(signer.KeyID()), []byte(other.KeyID()))...)
				})
			},
			want: []problem{{evidence.ProblemSignature, evidence.CustodyFile, n + 1}},
		},
		{
			// Rewriting a sealed entry and every prev after it keeps the
			// chain whole, but not the sealed hash.
			name:   "sealed entry edited, chain rebuilt",
			tamper: rechained(2),
			want:   []problem{{evidence.ProblemChanged, evidence.CustodyFile, 0}},
		},
		{
			name: "torn last line",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, filepath.Join(dir, evidence.CustodyFile), func(b []byte) []byte { return append(b, `{"seq":`...) })
			},
			want: []problem{{evidence.ProblemCustody, evidence.CustodyFile, n + 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyDir(t, base)
			tc.tamper(t, dir)
			r := mustVerify(t, dir, pub)
			if diff := cmp.Diff(tc.want, problems(r)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nall:%s", diff, describe(r))
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		dir := copyDir(t, base)
		if err := evidence.AppendCustody(dir, evidence.Entry{Action: "note"}, nil); !errors.Is(err, evidence.ErrSignerRequired) {
			t.Errorf("AppendCustody without a signer to a signed bundle: %v, want ErrSignerRequired", err)
		}
		rewrite(t, filepath.Join(dir, evidence.CustodyFile), func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"osUser":"responder"`), []byte(`"osUser":"somebody"`), 1)
		})
		if err := evidence.AppendCustody(dir, evidence.Entry{Action: "note"}, signer); err == nil {
			t.Error("AppendCustody to a log whose chain is broken succeeded")
		}

		dir = copyDir(t, base)
		rechained(1)(t, dir)
		if err := evidence.AppendCustody(dir, evidence.Entry{Action: "note"}, signer); !errors.Is(err, evidence.ErrCustodyChanged) {
			t.Errorf("AppendCustody to a log rewritten since sealing: %v, want ErrCustodyChanged", err)
		}

		unsealed := filepath.Join(t.TempDir(), "unsealed")
		b, err := evidence.Create(unsealed, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := evidence.AppendCustody(unsealed, evidence.Entry{Action: "note"}, signer); !errors.Is(err, evidence.ErrNotSealed) {
			t.Errorf("AppendCustody to an unsealed bundle: %v, want ErrNotSealed", err)
		}
		if err := evidence.AppendCustody(copyDir(t, base), evidence.Entry{}, signer); err == nil {
			t.Error("AppendCustody of an entry without action succeeded")
		}
	})
}

// TestAppendCustodyUnsigned: an unsigned bundle takes unsigned entries.
func TestAppendCustodyUnsigned(t *testing.T) {
	t.Parallel()
	dir := makeBundle(t, nil)
	if err := evidence.AppendCustody(dir, postSeal[0], nil); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, dir, nil)
	if r.Outcome() != evidence.NotChecked || r.PostSeal != 1 {
		t.Errorf("outcome %s with %d post-seal entries, want %s with 1:%s", r.Outcome(), r.PostSeal, evidence.NotChecked, describe(r))
	}
}

// custodyLines returns custody.log's lines without their newlines.
func custodyLines(t testing.TB, dir string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, evidence.CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

var prevField = regexp.MustCompile(`"prev":"[0-9a-f]{64}"`)

// rechained returns a tamperer that edits line i of custody.log and
// rebuilds the hash chain after it, as a careful forger would.
func rechained(i int) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		rewrite(t, filepath.Join(dir, evidence.CustodyFile), func(b []byte) []byte {
			lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
			lines[i-1] = bytes.Replace(lines[i-1], []byte(`"osUser":"responder"`), []byte(`"osUser":"somebody"`), 1)
			for j := i; j < len(lines); j++ {
				lines[j] = prevField.ReplaceAll(lines[j], []byte(`"prev":"`+sha256Hex(lines[j-1])+`"`))
			}
			return append(bytes.Join(lines, []byte("\n")), '\n')
		})
	}
}

// TestAppendCustodyWrongKey: an entry signed by another key than the
// seal's is refused, and the log stays as it was.
func TestAppendCustodyWrongKey(t *testing.T) {
	signer, _ := newKey(t, evidence.AlgEd25519)
	other, _ := newKey(t, evidence.AlgEd25519)
	dir := makeBundle(t, signer)
	before, err := os.ReadFile(filepath.Join(dir, evidence.CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := evidence.AppendCustody(dir, evidence.Entry{Action: "release"}, other); !errors.Is(err, evidence.ErrWrongKey) {
		t.Fatalf("AppendCustody with another key: want ErrWrongKey, got %v", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, evidence.CustodyFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("custody.log changed")
	}
}
