package evidence_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kir.dev/kir/evidence"
)

// TestOpen writes a bundle across three openings, as a playbook's steps
// do, with a crash's leftovers in between, then seals and verifies it.
func TestOpen(t *testing.T) {
	signer, pub := newKey(t, "ed25519")
	dir := filepath.Join(t.TempDir(), "bundle")
	opts := testOptions()
	b, err := evidence.Create(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("pod.json", strings.NewReader(`{"kind":"Pod"}`), evidence.Source{Kind: "manifest"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// What a SIGKILL between writing a file and recording it leaves: the
	// file, a temporary file and a torn index line.
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"logs/app.log", "logs/.kir-tmp-0123456789abcdef"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := os.OpenFile(filepath.Join(dir, evidence.IndexFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	idx.WriteString(`{"seq":2,"type":"file","data":{"path":"logs/app.log"`)
	idx.Close()

	b, err = evidence.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Has("pod.json"); !ok {
		t.Error("reopened bundle lost pod.json")
	}
	if _, ok := b.Has("logs/app.log"); ok {
		t.Error("reopened bundle kept logs/app.log, which was never recorded")
	}
	for _, name := range []string{"logs/app.log", "logs/.kir-tmp-0123456789abcdef"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: want it removed, got %v", name, err)
		}
	}
	if _, err := b.Put("pod.json", strings.NewReader("again"), evidence.Source{Kind: "manifest"}); !errors.Is(err, evidence.ErrExists) {
		t.Errorf("Put of a file the first opening wrote: want ErrExists, got %v", err)
	}
	if _, err := b.Put("logs/app.log", strings.NewReader("whole log\n"), evidence.Source{Kind: "log"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	other := opts
	other.Incident = "inc-43"
	if _, err := evidence.Open(dir, other); err == nil || !strings.Contains(err.Error(), `incident "inc-42"`) {
		t.Errorf("Open for another incident: want an error naming the bundle's incident, got %v", err)
	}

	b, err = evidence.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Open(dir, opts); err == nil {
		t.Error("a second writer opened the bundle while the first holds it")
	}
	if err := b.Seal(signer); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, evidence.IndexFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("index after sealing: want it removed, got %v", err)
	}
	rep, err := evidence.Verify(dir, pub)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome() != evidence.Verified {
		t.Fatalf("verify: %s %v", rep.Outcome(), rep.Problems)
	}
	s, err := evidence.Show(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range s.Files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, " "), "logs/app.log pod.json report.html"; got != want {
		t.Errorf("sealed files: got %s, want %s", got, want)
	}
	var notes int
	for _, c := range s.Custody {
		if c.Action == "note" && strings.Contains(fmt.Sprintf("%s", c.Detail), "logs/app.log") {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("custody notes naming the removed file: got %d, want 1", notes)
	}
	if _, err := evidence.Open(dir, opts); !errors.Is(err, evidence.ErrSealed) {
		t.Errorf("Open of a sealed bundle: want ErrSealed, got %v", err)
	}
}

// TestOpenInterruptedCreate: a bundle whose creation stopped after its
// custody log was created but before the first entry (and the index) is
// finished by Open, and seals and verifies.
func TestOpenInterruptedCreate(t *testing.T) {
	for _, withIndex := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "bundle")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		files := []string{evidence.CustodyFile}
		if withIndex {
			files = append(files, evidence.IndexFile)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		b, err := evidence.Open(dir, testOptions())
		if err != nil {
			t.Fatalf("index %v: %v", withIndex, err)
		}
		if _, err := b.Put("pod.json", strings.NewReader("{}"), evidence.Source{Kind: "manifest"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Seal(nil); err != nil {
			t.Fatal(err)
		}
		rep, err := evidence.Verify(dir, nil)
		if err != nil || rep.Outcome() != evidence.NotChecked {
			t.Errorf("index %v: verify %v %+v", withIndex, err, rep)
		}
	}
}

// TestOpenLostFile: a file the index lists that did not reach the disk
// whole (power lost mid-step) is removed on Open, noted, and can be
// collected again; the sealed bundle verifies.
func TestOpenLostFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := evidence.Create(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("logs/app.log", strings.NewReader("a whole log\n"), evidence.Source{Kind: "log"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "logs", "app.log")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	b, err = evidence.Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Has("logs/app.log"); ok {
		t.Fatal("a torn file is still in the bundle")
	}
	if _, err := b.Put("logs/app.log", strings.NewReader("a whole log\n"), evidence.Source{Kind: "log"}); err != nil {
		t.Fatalf("collecting it again: %v", err)
	}
	if err := b.Seal(nil); err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(dir, nil)
	if err != nil || rep.Outcome() != evidence.NotChecked {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	s, err := evidence.Show(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Files) != 2 { // the log and report.html
		t.Errorf("files %+v", s.Files)
	}
	var noted bool
	for _, c := range s.Custody {
		noted = noted || c.Action == "note" && strings.Contains(fmt.Sprintf("%s", c.Detail), `"lost":["logs/app.log"]`)
	}
	if !noted {
		t.Error("custody does not note the lost file")
	}
}
