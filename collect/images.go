package collect

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/term"
)

// Image is one image of the pod, pulled by digest into Dir as an OCI
// image layout.
type Image struct {
	// Dir is the layout's folder in the bundle (images/<n>, under
	// Options.Dir).
	Dir string `json:"dir"`
	// Reference is what was pulled: repository@sha256:….
	Reference string `json:"reference"`
	// ImageIDs are the image IDs the kubelet reported, and Containers the
	// containers that run this image.
	ImageIDs   []string `json:"imageIDs"`
	Containers []string `json:"containers"`
	// MediaType is the top manifest's: an index when the digest names a
	// multi-platform image, all of whose platforms are stored.
	MediaType string `json:"mediaType,omitempty"`
	// Manifests and Blobs count what was stored; Bytes is their size.
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	// Error says why the layout is incomplete or missing.
	Error string `json:"error,omitempty"`
}

// imagesFile is images/images.json: which container runs which image,
// and where each image is.
type imagesFile struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Pod        string `json:"pod"`
	// Credentials says which registry credentials were used.
	Credentials string  `json:"credentials"`
	Images      []Image `json:"images"`
}

// imageTarget is an image to pull and the Image it fills in.
type imageTarget struct {
	ref name.Digest
	img *Image
}

// images pulls the image of every container by the digest its status
// reports, one layout per distinct reference.
func (r *run) images(ctx context.Context) {
	var nameOpts []name.Option
	if r.o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	var targets []imageTarget
	byRef := map[string]*Image{}
	st := statuses(r.pod)
	for _, c := range containers(r.pod) {
		s, ok := st[c.name]
		if !ok || s.ImageID == "" {
			r.note("images", "container %s reports no image ID (not started?): its image is not pulled", c.name)
			continue
		}
		ref, err := digestReference(s.ImageID, c.image, nameOpts...)
		if err != nil {
			r.note("images", "container %s: %v: its image is not pulled", c.name, err)
			continue
		}
		img, ok := byRef[ref.String()]
		if !ok {
			img = &Image{Dir: path.Join(r.o.Dir, fmt.Sprintf("images/%d", len(targets))), Reference: ref.String()}
			byRef[ref.String()] = img
			targets = append(targets, imageTarget{ref: ref, img: img})
		}
		img.Containers = append(img.Containers, c.name)
		if !slices.Contains(img.ImageIDs, s.ImageID) {
			img.ImageIDs = append(img.ImageIDs, s.ImageID)
		}
	}
	if len(targets) == 0 {
		return
	}
	kc, credentials := r.keychain(ctx)
	r.note("images", "registry credentials: %s", credentials)
	rt := r.o.Transport
	if rt == nil {
		rt = newTransport(r.o.Jobs)
	}
	out := imagesFile{APIVersion: "kir.dev/v1alpha1", Kind: "Images", Namespace: r.namespace, Pod: r.name, Credentials: credentials}
	for i, t := range targets {
		err := r.pullImage(ctx, t.ref, t.img, kc, rt, fmt.Sprintf("images/%d", i))
		if err != nil {
			t.img.Error = err.Error()
			r.fail("images", fmt.Errorf("pulling %s (containers %s): %w", t.ref, strings.Join(t.img.Containers, ", "), err))
		}
		out.Images = append(out.Images, *t.img)
	}
	r.mu.Lock()
	r.res.Images = append(r.res.Images, out.Images...)
	r.mu.Unlock()
	src := r.source("image")
	src.Note = "which container runs which image, and the folder of each image's OCI layout"
	if _, err := r.putJSON("images/images.json", out, src); err != nil {
		r.fail("images", err)
	}
}

// PullImage pulls reference (repository@sha256:…) into dir, under
// o.Dir, as an OCI image layout (oci-layout, index.json, blobs/sha256/),
// each blob hashed as it is written and checked against its descriptor,
// the top manifest against the reference's digest. A digest that names an
// index brings every platform's image. It uses o.Keychain (nil:
// authn.DefaultKeychain), o.Insecure, o.Transport, o.Jobs, o.Progress and
// o.Timeout. Pod does the same for each image of the pod.
func PullImage(ctx context.Context, reference, dir string, o Options) (Image, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Image{}, err
	}
	var nameOpts []name.Option
	if o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.NewDigest(reference, nameOpts...)
	if err != nil {
		return Image{}, fmt.Errorf("parsing image reference %q: %w", reference, err)
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	rt := o.Transport
	if rt == nil {
		rt = newTransport(o.Jobs)
	}
	img := Image{Dir: path.Join(o.Dir, dir), Reference: ref.String()}
	r := newRun(nil, o, "", "")
	if err := r.pullImage(ctx, ref, &img, kc, rt, dir); err != nil {
		img.Error = err.Error()
		return img, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return img, nil
}

// digestReference turns an image ID, as container runtimes report it, into
// a reference by digest:
//
//	docker-pullable://repo@sha256:…   (dockershim, cri-dockerd)
//	repo@sha256:…                     (containerd, CRI-O)
//	sha256:…                          the digest alone: the repository
//	                                  comes from the container's image
//
// A bare digest may be the image's config digest rather than its
// manifest's (docker://sha256:… from dockershim); the registry then has no
// manifest by that digest, and the pull fails, saying so.
func digestReference(imageID, image string, opts ...name.Option) (name.Digest, error) {
	id := imageID
	for _, prefix := range []string{"docker-pullable://", "docker://"} {
		id = strings.TrimPrefix(id, prefix)
	}
	if strings.HasPrefix(id, "sha256:") {
		if _, err := v1.NewHash(id); err != nil {
			return name.Digest{}, fmt.Errorf("image ID %q: %w", imageID, err)
		}
		ref, err := name.ParseReference(image, opts...)
		if err != nil {
			return name.Digest{}, fmt.Errorf("image ID %q names no repository, and image %q does not parse: %w", imageID, image, err)
		}
		return ref.Context().Digest(id), nil
	}
	d, err := name.NewDigest(id, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image ID %q is no reference by digest: %w", imageID, err)
	}
	return d, nil
}

// keychain returns the registry credentials to use, and says which.
func (r *run) keychain(ctx context.Context) (authn.Keychain, string) {
	if r.o.Keychain != nil {
		return r.o.Keychain, "the keychain kir was given"
	}
	const fallback = "the default keychain (the docker config of the user running kir)"
	if !r.o.PullSecrets {
		return authn.DefaultKeychain, fallback + "; the pod's imagePullSecrets were not asked for"
	}
	var names []string
	for _, s := range r.pod.Spec.ImagePullSecrets {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return authn.DefaultKeychain, fallback + "; the pod has no imagePullSecrets"
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	kc, err := PullSecretKeychain(ctx, r.client, r.namespace, names)
	if kc == nil {
		return authn.DefaultKeychain, fmt.Sprintf("%s; the pod's imagePullSecrets could not be used: %v", fallback, err)
	}
	used := fmt.Sprintf("the pod's imagePullSecrets %s, then %s", strings.Join(names, ", "), fallback)
	if err != nil {
		used += fmt.Sprintf(" (some could not be used: %v)", err)
	}
	return authn.NewMultiKeychain(kc, authn.DefaultKeychain), used
}

// newTransport is http.DefaultTransport with enough idle connections per
// registry for jobs parallel downloads.
func newTransport(jobs int) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = jobs + 2
	t.ReadBufferSize = 256 << 10
	return t
}

// progressOut is where progress bars go: nowhere for nil or a file that is
// not a terminal (a log, a pipe: bars would only litter it).
func progressOut(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	if f, ok := w.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return w
}
