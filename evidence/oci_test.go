package evidence_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kir.dev/kir/evidence"
)

func TestPackDeterministic(t *testing.T) {
	t.Parallel()
	signer, _ := newKey(t, evidence.AlgEd25519)
	dir := makeBundle(t, signer)
	out := t.TempDir()
	a, b, c := filepath.Join(out, "a.tar.gz"), filepath.Join(out, "b.tar.gz"), filepath.Join(out, "c.tar.gz")
	if err := evidence.Pack(dir, a); err != nil {
		t.Fatal(err)
	}
	if err := evidence.Pack(dir, b); err != nil {
		t.Fatal(err)
	}
	// A copy has other inodes and mtimes, and packs the same.
	if err := evidence.Pack(copyDir(t, dir), c); err != nil {
		t.Fatal(err)
	}
	ab, bb, cb := readFile(t, a), readFile(t, b), readFile(t, c)
	if !bytes.Equal(ab, bb) || !bytes.Equal(ab, cb) {
		t.Errorf("packing one bundle three times gave different bytes: %d, %d, %d bytes", len(ab), len(bb), len(cb))
	}
	if err := evidence.Pack(dir, a); err == nil {
		t.Error("Pack over an existing file succeeded")
	}
	if err := evidence.Pack(dir, filepath.Join(dir, "self.tar.gz")); err == nil {
		t.Error("Pack into the bundle itself succeeded")
	}

	type entry struct {
		Name     string
		Mode     int64
		Type     byte
		ModTime  time.Time
		Uid, Gid int
		Owner    string
	}
	var got []entry
	tr := tar.NewReader(gunzip(t, ab))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, entry{h.Name, h.Mode, h.Typeflag, h.ModTime.UTC(), h.Uid, h.Gid, h.Uname + h.Gname})
	}
	epoch := time.Unix(0, 0).UTC()
	file := func(name string) entry { return entry{name, 0o444, tar.TypeReg, epoch, 0, 0, ""} }
	dirEntry := func(name string) entry { return entry{name, 0o700, tar.TypeDir, epoch, 0, 0, ""} }
	want := []entry{
		file("custody.log"),
		dirEntry("events/"),
		file("events/pod.json"),
		dirEntry("logs/"),
		file("logs/app.log"),
		file("logs/sidecar.previous.log"),
		file("manifest.json"),
		dirEntry("manifests/"),
		dirEntry("manifests/ReplicaSet/"),
		file("manifests/ReplicaSet/web-7f9c.json"),
		file("pod.json"),
		file("report.html"),
		file("statement.dsse.json"),
		file("statement.json"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
}

// newRegistry starts an in-process registry and returns its host.
func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestPushPull(t *testing.T) {
	t.Parallel()
	host := newRegistry(t)
	signer, pub := newKey(t, evidence.AlgECDSAP256)
	dir := makeBundle(t, signer)
	if err := evidence.AppendCustody(dir, evidence.Entry{Action: "push", Detail: map[string]string{"to": host}}, signer); err != nil {
		t.Fatal(err)
	}
	ref := host + "/evidence/inc-42:v1"
	digest, err := evidence.Push(t.Context(), dir, ref)
	if err != nil {
		t.Fatal(err)
	}

	// What the registry holds.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != digest {
		t.Errorf("Push returned %s, the registry has %s", digest, desc.Digest)
	}
	var mf v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &mf); err != nil {
		t.Fatal(err)
	}
	type shape struct {
		MediaType, ArtifactType, Config string
		Layers                          []string
	}
	got := shape{string(mf.MediaType), mf.ArtifactType, string(mf.Config.MediaType), nil}
	for _, l := range mf.Layers {
		got.Layers = append(got.Layers, string(l.MediaType))
	}
	want := shape{string(types.OCIManifestSchema1), evidence.ArtifactType, evidence.ArtifactType, []string{evidence.LayerMediaType}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("artifact (-want +got):\n%s", diff)
	}
	packed := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := evidence.Pack(dir, packed); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(readFile(t, packed))); h != mf.Layers[0].Digest {
		t.Errorf("the layer is %s, Pack gives %s: not the deterministic archive", mf.Layers[0].Digest, h)
	}

	for _, from := range []string{ref, host + "/evidence/inc-42@" + digest} {
		out := filepath.Join(t.TempDir(), "pulled")
		if err := evidence.Pull(t.Context(), from, out); err != nil {
			t.Fatalf("Pull(%s): %v", from, err)
		}
		rep := mustVerify(t, out, pub)
		if rep.Outcome() != evidence.Verified || rep.PostSeal != 1 {
			t.Errorf("Verify of the bundle pulled from %s: %s, %d post-seal entries:%s", from, rep.Outcome(), rep.PostSeal, describe(rep))
		}
		if err := evidence.Pull(t.Context(), from, out); !errors.Is(err, evidence.ErrExists) {
			t.Errorf("Pull into a bundle: %v, want ErrExists", err)
		}
	}

	if _, err := evidence.Push(t.Context(), t.TempDir(), host+"/evidence/empty:v1"); !errors.Is(err, evidence.ErrNotSealed) {
		t.Errorf("Push of an empty directory: %v, want ErrNotSealed", err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	imageRef, err := name.ParseReference(host + "/some/image:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(imageRef, img); err != nil {
		t.Fatal(err)
	}
	if err := evidence.Pull(t.Context(), imageRef.String(), filepath.Join(t.TempDir(), "x")); !errors.Is(err, evidence.ErrNotEvidence) {
		t.Errorf("Pull of a container image: %v, want ErrNotEvidence", err)
	}
}

func TestPullRejectsUnsafeArchives(t *testing.T) {
	t.Parallel()
	host := newRegistry(t)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"dot-dot", []tarEntry{{h: tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}}},
		{"dot-dot inside", []tarEntry{
			{h: tar.Header{Name: "logs/", Typeflag: tar.TypeDir, Mode: 0o700}},
			{h: tar.Header{Name: "logs/../../escaped", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"},
		}},
		{"absolute", []tarEntry{{h: tar.Header{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}}},
		{"symlink", []tarEntry{{h: tar.Header{Name: "logs", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}}},
		{"hard link", []tarEntry{{h: tar.Header{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}}},
		{"device", []tarEntry{{h: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}}},
		{"backslash", []tarEntry{{h: tar.Header{Name: `..\escaped`, Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ref := host + "/evil/" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), "'", "") + ":v1"
			pushLayer(t, ref, tarGz(t, append([]tarEntry{{h: tar.Header{Name: "ok.log", Typeflag: tar.TypeReg, Mode: 0o444}, body: "fine\n"}}, tc.entries...)))
			parent := t.TempDir()
			out := filepath.Join(parent, "a", "pulled")
			if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
				t.Fatal(err)
			}
			err := evidence.Pull(t.Context(), ref, out)
			if !errors.Is(err, evidence.ErrUnsafeArchive) {
				t.Fatalf("Pull: %v, want ErrUnsafeArchive", err)
			}
			// Nothing was left: not the bundle, not its temporary
			// directory, not an escaped file.
			for _, dir := range []string{parent, filepath.Dir(out)} {
				names, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					if n.Name() != "a" {
						t.Errorf("Pull left %s in %s", n.Name(), dir)
					}
				}
			}
		})
	}
}

type tarEntry struct {
	h    tar.Header
	body string
}

func tarGz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		e.h.Size = int64(len(e.body))
		e.h.Format = tar.FormatPAX // the only format that holds a backslash or a long name as is
		if err := tw.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pushLayer pushes layer as a bundle artifact, as a hostile registry
// might serve it.
func pushLayer(t *testing.T, ref string, layer []byte) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	config := static.NewLayer([]byte(`{}`), evidence.ArtifactType)
	bundle := static.NewLayer(layer, evidence.LayerMediaType)
	for _, l := range []v1.Layer{config, bundle} {
		if err := remote.WriteLayer(r.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	cd, err := partial.Descriptor(config)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := partial.Descriptor(bundle)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: evidence.ArtifactType,
		Config: *cd, Layers: []v1.Descriptor{*ld},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawManifest(raw)); err != nil {
		t.Fatal(err)
	}
}

type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, b []byte) io.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}
