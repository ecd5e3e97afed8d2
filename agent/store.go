package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"
)

// A capture is what the agent took of one quarantined pod, kept on the
// node until kir fetches it (serve.go) and the pod is released: one
// directory, CaptureDir/<quarantine>/<id>/, whose files are written once
// each, hashed while written, and listed with their SHA-256 in
// ManifestName, written last. The report's Capture names the manifest's
// digest, so kir checks what it fetched against what the agent wrote
// through a second path: the API server.

// ManifestName is the capture's manifest: a Manifest, JSON.
const ManifestName = "capture.json"

// Manifest lists the files of a capture.
type Manifest struct {
	Node       string        `json:"node"`
	Namespace  string        `json:"namespace"`
	Pod        string        `json:"pod"`
	UID        string        `json:"uid"`
	ID         string        `json:"id"`
	CapturedAt time.Time     `json:"capturedAt"`
	Files      []CaptureFile `json:"files"`
	// Notes say what was not taken and why it is no failure; Errors what
	// failed.
	Notes  []string `json:"notes,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// CaptureFile is one file of a capture.
type CaptureFile struct {
	// Name is slash-separated, relative to the capture.
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// validName is what a capture file may be called: the agent names them,
// and the server refuses any other name.
var validName = regexp.MustCompile(`^(processes\.json|sockets\.json|capture\.json|exe/[0-9a-f]{64}|layer/[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(tar|json))$`)

// ValidCaptureName reports whether name is one the agent gives a file of
// a capture (the manifest included): kir refuses a manifest listing any
// other.
func ValidCaptureName(name string) bool { return validName.MatchString(name) }

// validID is what a quarantine value (a pod UID) and a capture id look like.
var validID = regexp.MustCompile(`^[0-9a-z][-0-9a-z]{0,62}$`)

// capture is a capture being written.
type capture struct {
	dir string

	mu sync.Mutex
	m  Manifest
	// max bounds the bytes the capture's files hold, used counts them:
	// past max a write fails with errBudget, so a pod cannot make the
	// agent fill its volume (and be evicted) whatever it writes.
	max, used int64
}

// errBudget is a write past the capture's byte budget.
var errBudget = errors.New("the capture's byte budget is spent")

// newCapture creates the capture's directory under root, which must not
// exist: two captures never share one.
func newCapture(root, quarantine, id string, m Manifest, budget int64) (*capture, error) {
	if !validID.MatchString(quarantine) || !validID.MatchString(id) {
		return nil, fmt.Errorf("capture %q/%q: not a valid name", quarantine, id)
	}
	dir := filepath.Join(root, quarantine, id)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("creating the capture directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the capture directory: %w", err)
	}
	m.ID = id
	return &capture{dir: dir, m: m, max: budget}, nil
}

// left is what remains of the capture's byte budget.
func (c *capture) left() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.max-c.used, 0)
}

// take reserves up to n bytes of the budget and returns how many.
func (c *capture) take(n int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n = min(n, max(c.max-c.used, 0))
	c.used += n
	return n
}

// diskUsage is the size of the files under root: what the captures kept
// on the node hold.
func diskUsage(root string) int64 {
	var n int64
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// write writes the file name with what fill writes, hashed while written,
// and lists it. A file that fill failed to finish is still listed, with
// what it holds, and the error returned: evidence cut short is evidence.
func (c *capture) write(name string, fill func(io.Writer) error) error {
	if !validName.MatchString(name) || name == ManifestName {
		return fmt.Errorf("capture file %q: not a valid name", name)
	}
	p := filepath.Join(c.dir, filepath.FromSlash(name))
	// Mkdir, not MkdirAll: a capture removed while taken (its pod
	// released) must stay removed, not come back a directory at a time.
	if err := os.Mkdir(filepath.Dir(p), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h), take: c.take}
	ferr := fill(cw)
	if err := f.Close(); err != nil && ferr == nil {
		ferr = err
	}
	c.mu.Lock()
	c.m.Files = append(c.m.Files, CaptureFile{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n})
	c.mu.Unlock()
	if ferr != nil {
		return fmt.Errorf("writing %s: %w", name, ferr)
	}
	return nil
}

// has reports whether the capture holds a file called name.
func (c *capture) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.m.Files {
		if f.Name == name {
			return true
		}
	}
	return false
}

// writeJSON writes v as indented JSON.
func (c *capture) writeJSON(name string, v any) error {
	return c.write(name, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

func (c *capture) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.Notes = append(c.m.Notes, fmt.Sprintf(format, args...))
}

func (c *capture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.Errors = append(c.m.Errors, err.Error())
}

// seal writes the manifest and returns its digest and the capture's
// totals.
func (c *capture) seal() (CaptureRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	raw, err := json.MarshalIndent(c.m, "", "  ")
	if err != nil {
		return CaptureRecord{}, err
	}
	raw = append(raw, '\n')
	if err := os.WriteFile(filepath.Join(c.dir, ManifestName), raw, 0o400); err != nil {
		return CaptureRecord{}, fmt.Errorf("writing the capture's manifest: %w", err)
	}
	sum := sha256.Sum256(raw)
	rec := CaptureRecord{ID: c.m.ID, State: CaptureReady, Manifest: hex.EncodeToString(sum[:]), Files: len(c.m.Files), Errors: len(c.m.Errors)}
	for _, f := range c.m.Files {
		rec.Bytes += f.Size
	}
	return rec, nil
}

// countWriter counts what it writes, within what take grants.
type countWriter struct {
	w    io.Writer
	n    int64
	take func(int64) int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	granted := c.take(int64(len(p)))
	n, err := c.w.Write(p[:granted])
	c.n += int64(n)
	if err == nil && granted < int64(len(p)) {
		err = errBudget
	}
	return n, err
}

// sealedManifest reads a sealed capture's manifest, and its bytes.
func sealedManifest(root, quarantine, id string) (Manifest, []byte, error) {
	var m Manifest
	if !validID.MatchString(quarantine) || !validID.MatchString(id) {
		return m, nil, errNoSuchFile
	}
	raw, err := os.ReadFile(filepath.Join(root, quarantine, id, ManifestName))
	if err != nil {
		return m, nil, errNoSuchFile // not sealed yet, or gone
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, nil, fmt.Errorf("the capture's manifest: %w", err)
	}
	return m, raw, nil
}

// openListed opens a file the manifest lists, and no other.
func openListed(root string, m Manifest, quarantine, id, name string) (*os.File, CaptureFile, error) {
	i := slices.IndexFunc(m.Files, func(f CaptureFile) bool { return f.Name == name })
	if i < 0 || !validName.MatchString(name) || path.Clean(name) != name {
		return nil, CaptureFile{}, errNoSuchFile
	}
	f, err := os.Open(filepath.Join(root, quarantine, id, filepath.FromSlash(name)))
	if err != nil {
		return nil, CaptureFile{}, errNoSuchFile
	}
	return f, m.Files[i], nil
}

var errNoSuchFile = errors.New("no such capture file")

// removeCaptures deletes every capture of a quarantine: the pod was
// released or deleted, and kir fetched what it needed.
func removeCaptures(root, quarantine string) error {
	if !validID.MatchString(quarantine) {
		return nil
	}
	return os.RemoveAll(filepath.Join(root, quarantine))
}
