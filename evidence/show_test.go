package evidence_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"kir.dev/kir/evidence"
)

func TestShow(t *testing.T) {
	t.Parallel()
	signer, _ := newKey(t, evidence.AlgEd25519)
	dir := makeBundle(t, signer)
	if err := evidence.AppendCustody(dir, postSeal[1], signer); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := evidence.Pack(dir, archive); err != nil {
		t.Fatal(err)
	}
	var m evidence.Manifest
	readJSON(t, filepath.Join(dir, evidence.ManifestFile), &m)

	s, err := evidence.Show(dir)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	var postSealed []bool
	for _, rec := range s.Custody {
		actions = append(actions, rec.Action)
		postSealed = append(postSealed, rec.PostSeal)
	}
	type summary struct {
		Incident   string
		Sealed     bool
		Signed     bool
		KeyIDs     []string
		Files      []evidence.File
		Actions    []string
		PostSealed []bool
	}
	got := summary{s.Incident, !s.Sealed.IsZero(), s.Signed, s.KeyIDs, s.Files, actions, postSealed}
	want := summary{
		Incident: "inc-42", Sealed: true, Signed: true, KeyIDs: []string{signer.KeyID()}, Files: m.Files,
		Actions:    []string{"create", "contain", "collect", "note", "run-step", "seal", "export"},
		PostSealed: []bool{false, false, false, false, false, false, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Show (-want +got):\n%s", diff)
	}
	fromArchive, err := evidence.Show(archive)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, fromArchive, cmpopts.IgnoreFields(evidence.Summary{}, "Path")); diff != "" {
		t.Errorf("Show of the archive differs from Show of the directory (-dir +archive):\n%s", diff)
	}
}

func TestShowUnsealed(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "b")
	b, err := evidence.Create(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("logs/app.log", strings.NewReader("hello\n"), evidence.Source{Kind: "log"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Custody(custodyEntries[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := evidence.Show(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &evidence.Summary{
		Path: dir, Incident: "inc-42",
		Files: []evidence.File{{Path: "logs/app.log", Size: 6}}, Bytes: 6,
	}
	if diff := cmp.Diff(want, s, cmpopts.IgnoreFields(evidence.Summary{}, "Custody")); diff != "" {
		t.Errorf("Show (-want +got):\n%s", diff)
	}
	if len(s.Custody) != 2 || s.Custody[1].Action != "contain" {
		t.Errorf("custody %+v, want create and contain", s.Custody)
	}
	r := mustVerify(t, dir, nil)
	if r.Outcome() != evidence.Failed {
		t.Errorf("Verify of an unsealed bundle: %s, want failed", r.Outcome())
	}
}
