package evidence_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"kir.dev/kir/evidence"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		alg  string // "" for an unsigned bundle
		want evidence.Outcome
	}{
		{"ed25519", evidence.AlgEd25519, evidence.Verified},
		{"ecdsa-p256", evidence.AlgECDSAP256, evidence.Verified},
		{"unsigned", "", evidence.NotChecked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				signer evidence.Signer
				pub    any
			)
			if tc.alg != "" {
				signer, pub = newKey(t, tc.alg)
			}
			dir := filepath.Join(t.TempDir(), "bundle")
			b, err := evidence.Create(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}

			// Collectors write logs and image blobs in parallel, and note
			// things in custody as they go.
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				want []evidence.File
			)
			for i := range 24 {
				wg.Go(func() {
					name := fmt.Sprintf("images/0/blobs/sha256/blob-%02d", i)
					content := bytes.Repeat([]byte{byte(i)}, i*i*2500) // up to 1.3 MB: more than a copy buffer
					src := evidence.Source{Kind: "image", Image: "registry.example/web@sha256:abc"}
					f, err := b.Put(name, bytes.NewReader(content), src)
					if err != nil {
						t.Error(err)
						return
					}
					if err := b.Custody(evidence.Entry{Action: "note", Detail: map[string]string{"blob": name}}); err != nil {
						t.Error(err)
					}
					sum := sha256.Sum256(content)
					mu.Lock()
					defer mu.Unlock()
					want = append(want, evidence.File{Path: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)), Source: f.Source})
				})
			}
			for name, content := range evidenceFiles {
				f, err := b.Put(name, strings.NewReader(content), evidence.Source{Kind: "log"})
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256([]byte(content))
				mu.Lock()
				want = append(want, evidence.File{Path: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)), Source: f.Source})
				mu.Unlock()
			}
			wg.Wait()
			for _, e := range custodyEntries {
				if err := b.Custody(e); err != nil {
					t.Fatal(err)
				}
			}
			sortByPath := cmpopts.SortSlices(func(a, b evidence.File) bool { return a.Path < b.Path })
			if diff := cmp.Diff(want, b.Files(), sortByPath); diff != "" {
				t.Errorf("Files() (-want +got):\n%s", diff)
			}
			if err := b.Seal(signer); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Put("late.log", strings.NewReader("x"), evidence.Source{}); !errors.Is(err, evidence.ErrSealed) {
				t.Errorf("Put after Seal: %v, want ErrSealed", err)
			}
			if err := b.Custody(evidence.Entry{Action: "note"}); !errors.Is(err, evidence.ErrSealed) {
				t.Errorf("Custody after Seal: %v, want ErrSealed", err)
			}
			if err := b.Seal(signer); !errors.Is(err, evidence.ErrSealed) {
				t.Errorf("second Seal: %v, want ErrSealed", err)
			}

			var m evidence.Manifest
			readJSON(t, filepath.Join(dir, evidence.ManifestFile), &m)
			gotPaths := filePaths(m.Files)
			wantPaths := append(filePaths(want), evidence.ReportFile)
			if diff := cmp.Diff(wantPaths, gotPaths, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("manifest files (-want +got):\n%s", diff)
			}
			checkModes(t, dir)

			wantReport := evidence.Report{
				Incident: "inc-42", Sealed: m.Sealed,
				Files:          len(want) + 4,                    // + report.html, manifest.json, statement.json, custody.log
				CustodyEntries: 1 + 24 + len(custodyEntries) + 1, // create, notes, entries, seal
				Signed:         signer != nil, SignatureVerified: signer != nil,
			}
			if signer != nil {
				wantReport.Files++ // statement.dsse.json
				wantReport.KeyID = signer.KeyID()
			}
			ignore := cmpopts.IgnoreFields(evidence.Report{}, "Path", "Bytes")
			archive := filepath.Join(t.TempDir(), "bundle.tar.gz")
			if err := evidence.Pack(dir, archive); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{dir, archive} {
				r := mustVerify(t, path, pub)
				if diff := cmp.Diff(&wantReport, r, ignore, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Verify(%s) (-want +got):\n%s", filepath.Base(path), diff)
				}
				if got := r.Outcome(); got != tc.want {
					t.Errorf("Verify(%s).Outcome() = %s, want %s", filepath.Base(path), got, tc.want)
				}
			}
		})
	}
}

// collectedNanos is how the manifest writes collection times.
var collectedNanos = regexp.MustCompile(`"collected": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"`)

func TestManifestTimes(t *testing.T) {
	t.Parallel()
	dir := makeBundle(t, nil)
	b, err := os.ReadFile(filepath.Join(dir, evidence.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m evidence.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if got, want := len(collectedNanos.FindAll(b, -1)), len(m.Files); got != want {
		t.Errorf("%d collection times with nine-digit nanoseconds in UTC, want %d:\n%s", got, want, b)
	}
	for _, f := range m.Files {
		if f.Path == "logs/app.log" && f.Source.AuditID != "audit-logs/app.log" {
			t.Errorf("logs/app.log audit id %q, want audit-logs/app.log", f.Source.AuditID)
		}
	}
}

func TestPutRejects(t *testing.T) {
	t.Parallel()
	b, err := evidence.Create(filepath.Join(t.TempDir(), "b"), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Put("logs/a.log", strings.NewReader("a"), evidence.Source{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want error
	}{
		{"", evidence.ErrInvalidName},
		{".", evidence.ErrInvalidName},
		{"..", evidence.ErrInvalidName},
		{"../escape", evidence.ErrInvalidName},
		{"logs/../../escape", evidence.ErrInvalidName},
		{"/etc/passwd", evidence.ErrInvalidName},
		{"logs//a.log", evidence.ErrInvalidName},
		{"logs/./a.log", evidence.ErrInvalidName},
		{"logs/", evidence.ErrInvalidName},
		{`logs\a.log`, evidence.ErrInvalidName},
		{"logs/.kir-tmp-1234", evidence.ErrInvalidName},
		{evidence.ManifestFile, evidence.ErrInvalidName},
		{evidence.CustodyFile, evidence.ErrInvalidName},
		{evidence.StatementFile, evidence.ErrInvalidName},
		{evidence.EnvelopeFile, evidence.ErrInvalidName},
		{evidence.ReportFile, evidence.ErrInvalidName},
		{"logs/a.log", evidence.ErrExists},
	} {
		if _, err := b.Put(tc.name, strings.NewReader("x"), evidence.Source{}); !errors.Is(err, tc.want) {
			t.Errorf("Put(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	got, err := os.ReadFile(filepath.Join(b.Dir(), "logs", "a.log"))
	if err != nil || string(got) != "a" {
		t.Errorf("logs/a.log = %q, %v after the refused Puts; want \"a\"", got, err)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		want      error // nil: Create succeeds
	}{
		{"new", filepath.Join(t.TempDir(), "new"), nil},
		{"empty", empty, nil},
		{"not empty", full, evidence.ErrExists},
		{"a file", file, evidence.ErrExists},
	} {
		b, err := evidence.Create(tc.dir, testOptions())
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: Create: %v", tc.name, err)
				continue
			}
			b.Close()
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Create = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := evidence.Create(filepath.Join(t.TempDir(), "x"), evidence.Options{}); err == nil {
		t.Error("Create without an incident succeeded")
	}
}

func filePaths(files []evidence.File) []string {
	var ps []string
	for _, f := range files {
		ps = append(ps, f.Path)
	}
	return ps
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checkModes checks that a sealed bundle is read-only: files 0444,
// directories 0700.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o444)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
