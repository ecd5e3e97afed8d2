package collect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"

	"kir.dev/kir/evidence"
)

const (
	// maxManifestBytes bounds a manifest held in memory; registries
	// themselves refuse manifests over 4 MiB.
	maxManifestBytes = 8 << 20
	// maxManifestDepth bounds index nesting.
	maxManifestDepth = 4
	// copyBufferBytes is the buffer each blob download streams through.
	copyBufferBytes = 1 << 20
	// blobAttempts is how often a blob request is tried when the registry
	// answers with a transient error before sending the blob.
	blobAttempts = 3
)

// manifestAccept lists every manifest type stored, index types first.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex),
	string(types.DockerManifestList),
	string(types.OCIManifestSchema1),
	string(types.DockerManifestSchema2),
}, ", ")

// ErrDigestMismatch is returned when the registry serves content whose
// sha256 is not the digest it was asked for.
var ErrDigestMismatch = errors.New("digest mismatch")

// fetcher pulls one image by digest into an OCI image layout in the sink.
type fetcher struct {
	r      *run
	client *http.Client
	repo   name.Repository
	dir    string // the layout's folder, relative to Options.Dir
	src    evidence.Source
	bar    *progressbar.ProgressBar

	mu     sync.Mutex
	queued map[v1.Hash]bool
	blobs  []v1.Descriptor
	img    *Image
}

// pullImage pulls ref, stores it under dir as an OCI image layout and
// fills in img. Every manifest and blob is hashed as it is written and
// must match its descriptor; the top manifest's digest is the digest of
// ref, that is the image ID the kubelet reported.
func (r *run) pullImage(ctx context.Context, ref name.Digest, img *Image, kc authn.Keychain, rt http.RoundTripper, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	repo := ref.Context()
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return fmt.Errorf("resolving credentials for %s: %w", repo, err)
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("authenticating to %s: %w", repo.Registry, err)
	}
	src := r.source("image")
	src.Image = ref.String()
	src.Container = strings.Join(img.Containers, ",")
	f := &fetcher{r: r, client: &http.Client{Transport: tr}, repo: repo, dir: dir, src: src, queued: map[v1.Hash]bool{}, img: img}

	digest, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return fmt.Errorf("parsing digest of %s: %w", ref, err)
	}
	top, err := f.manifest(ctx, v1.Descriptor{Digest: digest, Size: -1}, 0)
	if err != nil {
		return err
	}
	img.MediaType = string(top.MediaType)

	var total int64
	for _, b := range f.blobs {
		total += b.Size
	}
	if w := progressOut(f.r.o.Progress); w != nil {
		f.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(dir+" "+ref.String()),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		defer f.bar.Close()
	}
	blobErr := f.fetchBlobs(ctx)

	// The layout's own files, last: index.json names the image by
	// digest, so a reader finds every blob under blobs/.
	top.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref.String()}
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{top}}
	layoutErr := errors.Join(
		f.putJSON("oci-layout", map[string]string{"imageLayoutVersion": "1.0.0"}),
		f.putJSON("index.json", index),
	)
	return errors.Join(blobErr, layoutErr)
}

// url is the registry URL of a manifest or blob.
func (f *fetcher) url(kind string, d v1.Hash) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", f.repo.Scheme(), f.repo.RegistryStr(), f.repo.RepositoryStr(), kind, d)
}

// manifest fetches the manifest desc names, checks and stores it, and
// queues what it references: the manifests of an index (recursively) or
// the config and layers of an image. It returns desc with the media type
// and size the registry served.
func (f *fetcher) manifest(ctx context.Context, desc v1.Descriptor, depth int) (v1.Descriptor, error) {
	if depth > maxManifestDepth {
		return desc, fmt.Errorf("manifest %s: indexes nested deeper than %d", desc.Digest, maxManifestDepth)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url("manifests", desc.Digest), nil)
	if err != nil {
		return desc, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := f.client.Do(req)
	if err != nil {
		return desc, fmt.Errorf("fetching manifest %s: %w", desc.Digest, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return desc, fmt.Errorf("fetching manifest %s: %w", desc.Digest, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return desc, fmt.Errorf("fetching manifest %s: %w", desc.Digest, err)
	}
	if len(body) > maxManifestBytes {
		return desc, fmt.Errorf("manifest %s is larger than %d bytes", desc.Digest, maxManifestBytes)
	}
	if got := sha256Hex(body); got != desc.Digest.Hex {
		return desc, fmt.Errorf("manifest %s: the registry served content with sha256 %s: %w", desc.Digest, got, ErrDigestMismatch)
	}
	if desc.Size >= 0 && int64(len(body)) != desc.Size {
		return desc, fmt.Errorf("manifest %s: %d bytes, its descriptor says %d", desc.Digest, len(body), desc.Size)
	}
	mt := manifestMediaType(body, resp.Header.Get("Content-Type"))
	if desc.MediaType != "" && desc.MediaType != mt {
		return desc, fmt.Errorf("manifest %s is a %s, its descriptor says %s", desc.Digest, mt, desc.MediaType)
	}
	desc.MediaType, desc.Size = mt, int64(len(body))
	f.mu.Lock()
	f.queued[desc.Digest] = true
	f.mu.Unlock()
	if err := f.putBlob(desc, bytes.NewReader(body)); err != nil {
		return desc, err
	}
	f.img.Manifests++

	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if err != nil {
			return desc, fmt.Errorf("parsing index %s: %w", desc.Digest, err)
		}
		var errs []error
		for _, m := range idx.Manifests {
			if m.MediaType.IsIndex() || m.MediaType.IsImage() {
				if f.seen(m.Digest) {
					continue
				}
				if _, err := f.manifest(ctx, m, depth+1); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			f.queue(m) // an artifact: store what the index names
		}
		return desc, errors.Join(errs...)
	case mt.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(body))
		if err != nil {
			return desc, fmt.Errorf("parsing manifest %s: %w", desc.Digest, err)
		}
		f.queue(m.Config)
		for _, l := range m.Layers {
			if !l.MediaType.IsDistributable() {
				f.r.note("images", "%s: layer %s (%s) is non-distributable and not stored", f.src.Image, l.Digest, l.MediaType)
				continue
			}
			f.queue(l)
		}
		return desc, nil
	case mt.IsSchema1():
		return desc, fmt.Errorf("manifest %s is a Docker schema 1 manifest, which has no content digest to verify", desc.Digest)
	default:
		return desc, fmt.Errorf("manifest %s has media type %q, which kir does not store", desc.Digest, mt)
	}
}

// manifestMediaType is the manifest's own mediaType field, else the
// Content-Type the registry sent (Docker manifests lack the field in
// older tools' output).
func manifestMediaType(body []byte, contentType string) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.MediaType != "" {
		return probe.MediaType
	}
	mt, _, _ := strings.Cut(contentType, ";")
	return types.MediaType(strings.TrimSpace(mt))
}

// seen reports whether d was queued or stored already, and marks it.
func (f *fetcher) seen(d v1.Hash) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queued[d] {
		return true
	}
	f.queued[d] = true
	return false
}

// queue adds a blob to fetch, once.
func (f *fetcher) queue(d v1.Descriptor) {
	if f.seen(d.Digest) {
		return
	}
	f.blobs = append(f.blobs, d)
}

// fetchBlobs downloads every queued blob, Options.Jobs at a time. A blob
// that fails does not stop the others.
func (f *fetcher) fetchBlobs(ctx context.Context) error {
	var (
		g    errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	g.SetLimit(f.r.o.Jobs)
	for _, d := range f.blobs {
		g.Go(func() error {
			if err := f.blob(ctx, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// blob downloads one blob and streams it into the sink.
func (f *fetcher) blob(ctx context.Context, d v1.Descriptor) error {
	resp, err := f.getBlob(ctx, d)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		return fmt.Errorf("blob %s: the registry sends %d bytes, its descriptor says %d", d.Digest, resp.ContentLength, d.Size)
	}
	return f.putBlob(d, resp.Body)
}

// getBlob requests a blob, retrying when the registry fails before
// sending it.
func (f *fetcher) getBlob(ctx context.Context, d v1.Descriptor) (*http.Response, error) {
	var last error
	for attempt := range blobAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("fetching blob %s: %w (last error: %v)", d.Digest, ctx.Err(), last)
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url("blobs", d.Digest), nil)
		if err != nil {
			return nil, err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("fetching blob %s: %w", d.Digest, err)
			}
			last = err
			continue
		}
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			resp.Body.Close()
			last = err
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
				continue
			}
			return nil, fmt.Errorf("fetching blob %s: %w", d.Digest, err)
		}
		return resp, nil
	}
	return nil, fmt.Errorf("fetching blob %s: %w", d.Digest, last)
}

// putBlob writes blobs/sha256/<hex> from body and checks its size, and its
// digest against the SHA-256 the sink computed as it wrote (one hash per
// byte, not two: hashing is most of the CPU a pull costs). On a mismatch
// the file stays in the bundle — it is what the registry served — and the
// error says so.
func (f *fetcher) putBlob(d v1.Descriptor, body io.Reader) error {
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: only sha256 digests are supported", d.Digest)
	}
	file := path.Join(f.dir, "blobs", "sha256", d.Digest.Hex)
	hr := &hashingReader{r: body, max: d.Size}
	if f.bar != nil {
		hr.progress = f.bar
	}
	written, err := f.r.put(file, hr, f.src)
	if err != nil {
		return fmt.Errorf("storing blob %s: %w", d.Digest, err)
	}
	switch {
	case hr.n != d.Size:
		return fmt.Errorf("blob %s: %d bytes, its descriptor says %d", d.Digest, hr.n, d.Size)
	case written.SHA256 == "":
		return fmt.Errorf("blob %s: the sink reported no sha256 of what it wrote", d.Digest)
	case written.SHA256 != d.Digest.Hex:
		return fmt.Errorf("blob %s: the registry served content with sha256 %s: %w", d.Digest, written.SHA256, ErrDigestMismatch)
	}
	f.mu.Lock()
	f.img.Blobs++
	f.img.Bytes += hr.n
	f.mu.Unlock()
	return nil
}

// putJSON writes one of the layout's own files.
func (f *fetcher) putJSON(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", file, err)
	}
	if _, err := f.r.put(path.Join(f.dir, file), bytes.NewReader(b), f.src); err != nil {
		return err
	}
	return nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// hashingReader hashes (when h is set) and counts what is read through it, refuses to
// read past max+1 bytes (max < 0: no bound), and reports progress. Its
// WriteTo, which io.Copy prefers, streams through one large pooled buffer.
type hashingReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	max      int64
	progress io.Writer
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferBytes); return &b }}

func (h *hashingReader) Read(p []byte) (int, error) {
	if h.max >= 0 {
		if h.n > h.max {
			return 0, fmt.Errorf("more than the %d bytes the descriptor says", h.max)
		}
		if rest := h.max + 1 - h.n; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := h.r.Read(p)
	if n > 0 {
		if h.h != nil {
			h.h.Write(p[:n])
		}
		h.n += int64(n)
		if h.progress != nil {
			_, _ = h.progress.Write(p[:n])
		}
		if h.max >= 0 && h.n > h.max {
			return n, fmt.Errorf("more than the %d bytes the descriptor says", h.max)
		}
	}
	return n, err
}

func (h *hashingReader) WriteTo(w io.Writer) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := h.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
