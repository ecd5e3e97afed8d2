package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kir.dev/kir/internal/durable"
)

// Media types of a bundle pushed to a registry.
const (
	// ArtifactType is the manifest's artifactType and its config's media
	// type.
	ArtifactType = "application/vnd.kir.evidence.v1+json"
	// LayerMediaType is the media type of the one layer: the bundle as
	// Pack writes it.
	LayerMediaType = "application/vnd.kir.evidence.bundle.v1.tar+gzip"
)

// ErrNotEvidence is returned by Pull for an artifact that is not a bundle.
var ErrNotEvidence = errors.New("not a kir evidence bundle")

// artifactConfig is the config blob of a pushed bundle: enough to tell
// what it is without downloading it.
type artifactConfig struct {
	Incident string    `json:"incident"`
	Sealed   time.Time `json:"sealed"`
	Files    int       `json:"files"`
	Bytes    int64     `json:"bytes"`
	Signed   bool      `json:"signed"`
}

// Push uploads the sealed bundle in dir to ref (a tag or digest
// reference) as an OCI artifact: an image manifest with artifactType
// ArtifactType, a small JSON config of that media type, and one layer, the
// bundle packed as Pack does (LayerMediaType). It returns the manifest's
// digest, "sha256:…". opts carry credentials and transport; ctx wins over
// any remote.WithContext among them.
func Push(ctx context.Context, dir, ref string, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("pushing %s: parsing reference %q: %w", dir, ref, err)
	}
	digest, err := push(ctx, dir, r, append(opts, remote.WithContext(ctx)))
	if err != nil {
		return "", fmt.Errorf("pushing %s to %s: %w", dir, r, err)
	}
	return digest, nil
}

func push(ctx context.Context, dir string, ref name.Reference, opts []remote.Option) (string, error) {
	mb, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotSealed
	}
	if err != nil {
		return "", err
	}
	m, err := decodeManifest(mb)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", ManifestFile, err)
	}

	// The bundle may be gigabytes of images: pack it to a file, hashing
	// as it goes, and upload from there.
	tmp, err := os.CreateTemp("", "kir-push-*.tar.gz")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if err := pack(dir, io.MultiWriter(tmp, h), ctx.Err); err != nil {
		return "", err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	layer, err := partial.CompressedToLayer(&fileLayer{
		path:   tmp.Name(),
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		size:   size,
	})
	if err != nil {
		return "", err
	}

	cfg := artifactConfig{Incident: m.Incident, Sealed: m.Sealed, Files: len(m.Files)}
	for _, f := range m.Files {
		cfg.Bytes += f.Size
	}
	if _, err := os.Lstat(filepath.Join(dir, EnvelopeFile)); err == nil {
		cfg.Signed = true
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	config := static.NewLayer(cb, ArtifactType)

	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(ref.Context(), l, opts...); err != nil {
			return "", fmt.Errorf("uploading blob: %w", err)
		}
	}
	configDesc, err := partial.Descriptor(config)
	if err != nil {
		return "", err
	}
	layerDesc, err := partial.Descriptor(layer)
	if err != nil {
		return "", err
	}
	layerDesc.Annotations = map[string]string{"org.opencontainers.image.title": m.Incident + ".tar.gz"}
	mf := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        *configDesc,
		Layers:        []v1.Descriptor{*layerDesc},
		Annotations: map[string]string{
			"org.opencontainers.image.created": m.Sealed.UTC().Format(time.RFC3339),
			"dev.kir.incident":                 m.Incident,
		},
	}
	raw, err := json.Marshal(mf)
	if err != nil {
		return "", err
	}
	if err := remote.Put(ref, rawManifest(raw), opts...); err != nil {
		return "", fmt.Errorf("putting manifest: %w", err)
	}
	return "sha256:" + sha256Hex(raw), nil
}

// fileLayer is a blob in a local file, already compressed.
type fileLayer struct {
	path   string
	digest v1.Hash
	size   int64
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return LayerMediaType, nil }

// rawManifest is a manifest to put as it is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Pull downloads the bundle at ref (tag or digest) into outDir, which must
// not exist or be empty. It checks that the artifact is a bundle, that the
// layer's bytes have the digest the manifest gives, and unpacks them,
// refusing entries outside outDir, links and devices (ErrUnsafeArchive).
// Nothing appears at outDir unless all of that succeeded. Run Verify on
// the result: Pull proves the transfer, not the evidence.
func Pull(ctx context.Context, ref, outDir string, opts ...remote.Option) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("pulling: parsing reference %q: %w", ref, err)
	}
	if err := pull(r, outDir, append(opts, remote.WithContext(ctx))); err != nil {
		return fmt.Errorf("pulling %s: %w", r, err)
	}
	return nil
}

func pull(ref name.Reference, outDir string, opts []remote.Option) error {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return err
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return fmt.Errorf("%w: media type %s", ErrNotEvidence, desc.MediaType)
	}
	var mf v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &mf); err != nil {
		return fmt.Errorf("decoding manifest: %w", err)
	}
	if mf.ArtifactType != ArtifactType && mf.Config.MediaType != ArtifactType {
		return fmt.Errorf("%w: artifact type %q, config %q", ErrNotEvidence, mf.ArtifactType, mf.Config.MediaType)
	}
	if len(mf.Layers) != 1 || mf.Layers[0].MediaType != LayerMediaType {
		return fmt.Errorf("%w: want one layer of type %s", ErrNotEvidence, LayerMediaType)
	}
	want := mf.Layers[0]
	if want.Digest.Algorithm != "sha256" {
		return fmt.Errorf("layer digest %s: want sha256", want.Digest)
	}
	layer, err := remote.Layer(ref.Context().Digest(want.Digest.String()), opts...)
	if err != nil {
		return err
	}

	if err := absentOrEmpty(outDir); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(outDir)), ".kir-pull-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(rc, h)}
	if err := unpack(cr, tmp); err != nil {
		return err
	}
	// The rest of the stream (gzip trailer, tar padding) counts in the digest.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want.Digest.Hex || cr.n != want.Size {
		return fmt.Errorf("layer is sha256:%s (%d bytes), the manifest says %s (%d bytes)", got, cr.n, want.Digest, want.Size)
	}
	if err := os.Rename(tmp, outDir); err != nil {
		return err
	}
	ok = true
	return durable.SyncDir(filepath.Dir(filepath.Clean(outDir)))
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// absentOrEmpty returns nil if dir does not exist or is an empty directory.
func absentOrEmpty(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("%s: %w and is not empty", dir, ErrExists)
	}
	if err != nil && err != io.EOF {
		return err
	}
	return nil
}
