package kubetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The real node's images, built from local static binaries and imported
// into containerd: nothing is pulled. Pods use them with
// imagePullPolicy Never or IfNotPresent.
const (
	// PauseImage is the sandbox image: Kubernetes' static pause.
	PauseImage = "kir.test/pause:1"
	// BusyboxImage holds Debian's static busybox as /bin/busybox and its
	// applets as symlinks in /bin; its default command is sh.
	BusyboxImage = "kir.test/busybox:1"
)

// busyboxPath is Debian's busybox-static.
const busyboxPath = "/bin/busybox"

// busyboxApplets are linked in the busybox image's /bin: what a test's
// server, client or attacker runs.
var busyboxApplets = []string{
	"sh", "nc", "sleep", "echo", "cat", "ls", "ps", "kill", "wget", "ip",
	"netstat", "timeout", "true", "false", "printf", "date", "id", "env",
	"grep", "head", "tail", "mkdir", "rm", "hostname", "seq", "tee", "wc",
	"ping", "test", "[", "sed", "awk", "touch", "uname", "nslookup",
}

// imageFile is one file of an image's single layer.
type imageFile struct {
	name     string // without a leading slash
	data     []byte
	mode     int64
	linkname string // a symlink when set
	dir      bool
}

// pauseImage builds PauseImage from the pause binary at path.
func pauseImage(path string) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the pause binary: %w", err)
	}
	return singleLayerImage([]imageFile{{name: "pause", data: bin, mode: 0o755}},
		v1.Config{Entrypoint: []string{"/pause"}})
}

// busyboxImage builds BusyboxImage from the busybox binary at path.
func busyboxImage(path string) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (Debian package busybox-static): %w", err)
	}
	files := []imageFile{
		{name: "bin", dir: true, mode: 0o755},
		{name: "tmp", dir: true, mode: 0o1777},
		{name: "etc", dir: true, mode: 0o755},
		{name: "bin/busybox", data: bin, mode: 0o755},
	}
	for _, a := range busyboxApplets {
		files = append(files, imageFile{name: "bin/" + a, linkname: "busybox", mode: 0o777})
	}
	return singleLayerImage(files, v1.Config{
		Cmd: []string{"sh"},
		Env: []string{"PATH=/bin"},
	})
}

// singleLayerImage makes an image for this machine's platform from files.
func singleLayerImage(files []imageFile, cfg v1.Config) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps the image's digest the same from run to run.
	mtime := time.Unix(0, 0)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.dir:
			h.Typeflag, h.Name, h.Size = tar.TypeDir, f.name+"/", 0
		case f.linkname != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.linkname, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing layer entry %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("writing layer entry %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("adding layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, cfg
	return mutate.ConfigFile(img, cf)
}

// writeNodeImages builds the node's images and writes them, as one
// docker-style tarball that `ctr images import` reads, to dir/images.tar.
func writeNodeImages(dir, pausePath string) (string, error) {
	pause, err := pauseImage(pausePath)
	if err != nil {
		return "", err
	}
	busybox, err := busyboxImage(busyboxPath)
	if err != nil {
		return "", err
	}
	refs := map[name.Reference]v1.Image{}
	for ref, img := range map[string]v1.Image{PauseImage: pause, BusyboxImage: busybox} {
		tag, err := name.NewTag(ref)
		if err != nil {
			return "", fmt.Errorf("parsing %s: %w", ref, err)
		}
		refs[tag] = img
	}
	path := filepath.Join(dir, "images.tar")
	if err := tarball.MultiRefWriteToFile(path, refs); err != nil {
		return "", fmt.Errorf("writing the node's images to %s: %w", path, err)
	}
	return path, nil
}

// importNodeImages imports the images tarball into containerd's k8s.io
// namespace, where its CRI plugin finds them.
func (n *Node) importNodeImages(ctx context.Context) error {
	path, err := writeNodeImages(n.dir, n.bins[pauseName])
	if err != nil {
		return err
	}
	_, err = hostCmd(ctx, "ctr", "--address", containerdSocket, "--namespace", "k8s.io",
		"images", "import", "--snapshotter", containerdSnapshotter, path)
	if err != nil {
		return fmt.Errorf("importing the node's images into containerd: %w", err)
	}
	return nil
}
