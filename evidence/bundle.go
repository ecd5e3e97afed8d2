package evidence

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"kir.dev/kir/internal/durable"
	"kir.dev/kir/internal/journal"
)

// The bundle's own files, at its root.
const (
	ManifestFile  = "manifest.json"
	CustodyFile   = "custody.log"
	StatementFile = "statement.json"
	EnvelopeFile  = "statement.dsse.json"
	ReportFile    = "report.html"
)

// tmpPrefix starts the name of a file being written; Put refuses names
// with it, so a leftover from a crash never passes for evidence.
const tmpPrefix = ".kir-tmp-"

// Errors callers tell apart; the errors returned wrap them.
var (
	// ErrSealed is returned by Put, Custody and Seal once a bundle is
	// sealed (or its sealing failed).
	ErrSealed = errors.New("bundle is sealed")
	// ErrNotSealed is returned for an operation that needs a sealed bundle.
	ErrNotSealed = errors.New("bundle is not sealed")
	// ErrInvalidName is returned by Put for a name that is not a clean
	// relative slash path, or that is one of the bundle's own files.
	ErrInvalidName = errors.New("invalid file name")
	// ErrExists is returned by Put for a name already written, and by
	// Create for a directory that is not empty.
	ErrExists = errors.New("already exists")
)

// Options describe a new bundle.
type Options struct {
	// Incident names the incident; required.
	Incident string
	// Actor is the identity the API server knows kir as; it fills custody
	// entries that name none.
	Actor string
	// Version is kir's version, recorded in every custody entry.
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OSUser is the user kir runs as; "" means the current user's name.
	OSUser string
	// Host is the machine's name; "" means os.Hostname.
	Host string
}

// Bundle is an evidence bundle being written. Its methods are safe for
// concurrent use. It implements Sink.
type Bundle struct {
	dir     string
	opts    Options
	created time.Time

	dirMu sync.Mutex // serializes directory creation

	mu       sync.Mutex
	names    map[string]bool // every name reserved by Put, written or being written
	files    []File
	state    state
	custody  *journal.Writer
	inflight sync.WaitGroup // Puts between reservation and record

	indexMu sync.Mutex      // serializes appends to the index
	index   *journal.Writer // IndexFile; nil once sealed

	dirtyMu sync.Mutex
	dirty   []string // files and directories written since the last sync
}

type state int

const (
	open state = iota
	sealing
	sealed
	closed
)

var _ Sink = (*Bundle)(nil)

// Create starts a bundle in dir, which must not exist (its parents are
// created if missing) or be an empty directory, and records a "create"
// entry in its custody log.
func Create(dir string, opts Options) (*Bundle, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating bundle: %w", err)
	}
	made, err := makeBundleDir(dir)
	if err != nil {
		return nil, fmt.Errorf("creating bundle: %w", err)
	}
	w, err := journal.CreateFile(filepath.Join(dir, CustodyFile), journal.WithClock(opts.Now), journal.Lazy())
	if err != nil {
		return nil, fmt.Errorf("creating bundle: %w", err)
	}
	b := &Bundle{dir: dir, opts: opts, created: opts.Now().UTC(), names: map[string]bool{}, custody: w}
	if made {
		// Its name is made durable with its first files, by sync: a
		// bundle lost to a power cut before then held nothing.
		b.touched(filepath.Dir(filepath.Clean(dir)))
	}
	if b.index, err = journal.CreateFile(filepath.Join(dir, IndexFile), journal.WithClock(opts.Now), journal.Lazy()); err != nil {
		w.Close()
		return nil, fmt.Errorf("creating bundle: %w", err)
	}
	if err := b.Custody(Entry{Action: "create", Detail: map[string]string{"incident": opts.Incident}}); err != nil {
		b.closeLogs()
		return nil, fmt.Errorf("creating bundle: %w", err)
	}
	return b, nil
}

// makeBundleDir creates dir (0700: evidence may hold personal data and
// memory) and its missing parents, or accepts it if it is an empty
// directory. made says it created dir.
func makeBundleDir(dir string) (made bool, err error) {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o700); err != nil {
		return false, err
	}
	err = os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s: %w and is not a directory", dir, ErrExists)
	}
	return false, absentOrEmpty(dir)
}

// osUser names the user the process runs as.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

// Dir returns the bundle's directory.
func (b *Bundle) Dir() string { return b.dir }

// Put writes the file name with the content of r; see Sink. It is safe to
// call from many goroutines at once.
func (b *Bundle) Put(name string, r io.Reader, src Source) (File, error) {
	if err := checkName(name); err != nil {
		return File{}, fmt.Errorf("putting %q: %w", name, err)
	}
	if isOwnFile(name) {
		return File{}, fmt.Errorf("putting %q: %w: the bundle writes it", name, ErrInvalidName)
	}
	b.mu.Lock()
	switch {
	case b.state != open:
		b.mu.Unlock()
		return File{}, fmt.Errorf("putting %s: %w", name, ErrSealed)
	case b.names[name]:
		b.mu.Unlock()
		return File{}, fmt.Errorf("putting %s: %w", name, ErrExists)
	}
	b.names[name] = true
	b.inflight.Add(1)
	b.mu.Unlock()
	defer b.inflight.Done()

	f, err := b.put(name, r, src)
	if err == nil {
		err = b.record(f)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		delete(b.names, name)
		return File{}, fmt.Errorf("putting %s: %w", name, err)
	}
	b.files = append(b.files, f)
	return f, nil
}

// put writes one file without the checks of Put: Seal writes report.html
// with it.
func (b *Bundle) put(name string, r io.Reader, src Source) (File, error) {
	if src.Collected.IsZero() {
		src.Collected = b.opts.Now()
	}
	src.Collected = src.Collected.UTC()
	sum, size, err := b.writeOnce(name, r)
	if err != nil {
		return File{}, err
	}
	return File{Path: name, SHA256: sum, Size: size, Source: src}, nil
}

// writeOnce writes the file name: created exclusively under a temporary
// name in its directory, hashed while written, made read-only and renamed
// into place; sync makes it durable. The bundle's name
// reservation, not the rename, keeps two writers off one name; a name on
// disk that no reservation explains is refused all the same.
func (b *Bundle) writeOnce(name string, r io.Reader) (sum string, size int64, err error) {
	final := filepath.Join(b.dir, filepath.FromSlash(name))
	parent := filepath.Dir(final)
	if err := b.mkdirs(path.Dir(name)); err != nil {
		return "", 0, err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(parent, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	if size, err = io.CopyBuffer(io.MultiWriter(f, h), onlyReader{r}, buf); err != nil {
		return "", 0, err
	}
	// Read-only before it has its name: it is never writable there.
	if err = f.Chmod(0o444); err != nil {
		return "", 0, err
	}
	if err = f.Close(); err != nil {
		return "", 0, err
	}
	if _, err = os.Lstat(final); err == nil {
		return "", 0, fmt.Errorf("%s: %w on disk", name, ErrExists)
	}
	if err = os.Rename(tmp, final); err != nil {
		return "", 0, err
	}
	b.touched(final, parent)
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// bufSize is the buffer for copying and hashing: large reads keep the
// syscalls per byte, and so the overhead, small.
const bufSize = 1 << 20

// copyBuffers are writeOnce's buffers: a run collecting many small files
// at once must not hold a fresh MiB for each.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// onlyReader hides a reader's WriterTo, so that io.CopyBuffer uses the
// buffer given rather than a 32 KiB one of its own.
type onlyReader struct{ io.Reader }

// onlyWriter hides a writer's ReaderFrom, for the same reason.
type onlyWriter struct{ io.Writer }

// mkdirs creates the directories of dir (slash-separated, relative to the
// bundle) that are missing; sync makes them durable with the files.
func (b *Bundle) mkdirs(dir string) error {
	if dir == "." {
		return nil
	}
	b.dirMu.Lock()
	defer b.dirMu.Unlock()
	cur := b.dir
	for _, elem := range strings.Split(dir, "/") {
		next := filepath.Join(cur, elem)
		err := os.Mkdir(next, 0o700)
		switch {
		case err == nil:
			b.touched(cur, next)
		case errors.Is(err, fs.ErrExist):
			fi, err := os.Lstat(next)
			if err != nil {
				return err
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s: not a directory", next)
			}
		default:
			return err
		}
		cur = next
	}
	return nil
}

// Custody appends e to the custody log, filling the actor, OS user, host
// and version from the bundle's Options where e leaves them empty.
func (b *Bundle) Custody(e Entry) error {
	if e.Action == "" {
		return errors.New("recording custody: entry has no action")
	}
	if e.Actor == "" {
		e.Actor = b.opts.Actor
	}
	if e.OSUser == "" {
		e.OSUser = b.opts.OSUser
	}
	if e.Host == "" {
		e.Host = b.opts.Host
	}
	if e.Version == "" {
		e.Version = b.opts.Version
	}
	data, err := entryData(e)
	if err != nil {
		return fmt.Errorf("recording custody: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != open {
		return fmt.Errorf("recording custody %s: %w (use AppendCustody)", e.Action, ErrSealed)
	}
	if _, err := b.custody.Append(e.Action, data); err != nil {
		return fmt.Errorf("recording custody: %w", err)
	}
	return nil
}

// Files returns the files written so far, sorted by path.
func (b *Bundle) Files() []File {
	b.mu.Lock()
	defer b.mu.Unlock()
	files := slices.Clone(b.files)
	sortFiles(files)
	return files
}

func sortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
}

// Close makes what was written durable and releases the custody log of
// a bundle that is not sealed now (a later step may Open it again); Put
// and Custody fail afterwards. Seal does the same itself. Later calls do
// nothing.
func (b *Bundle) Close() error {
	b.mu.Lock()
	wasOpen := b.state == open
	if wasOpen {
		b.state = closed
	}
	b.mu.Unlock()
	b.inflight.Wait()
	var err error
	if wasOpen {
		err = b.sync()
	}
	return errors.Join(err, b.closeLogs())
}

// touched records files and directories written since the last sync.
func (b *Bundle) touched(paths ...string) {
	b.dirtyMu.Lock()
	b.dirty = append(b.dirty, paths...)
	b.dirtyMu.Unlock()
}

// sync makes everything written to the bundle since the last sync
// durable: files, their names and directories, the custody log and the
// index. Files are written without an fsync each. At the end of a step
// that wrote many, one syncfs(2) costs one file-system journal commit
// instead of one per file; a step that wrote few (the pod's snapshot,
// between an alert and its isolation) fsyncs each, because syncfs also
// waits for every other writer's dirty data on the file system: on a node
// whose disk container logs share, that can take seconds, and the first
// snapshot after a build here waited 225 ms. Where there is no syncfs,
// each is fsynced.
func (b *Bundle) sync() error {
	b.dirtyMu.Lock()
	dirty := b.dirty
	b.dirty = nil
	b.dirtyMu.Unlock()
	paths := append(dirty, filepath.Join(b.dir, CustodyFile), filepath.Join(b.dir, IndexFile), b.dir)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if len(paths) > fewPaths {
		err := durable.SyncFS(b.dir)
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the index, once sealed
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", p, err)
		}
	}
	return nil
}

// checkName accepts clean relative slash paths only: no "..", no "." or
// empty elements, no leading or trailing slash, no backslash.
func checkName(name string) error {
	switch {
	case name == "" || name == ".":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case !fs.ValidPath(name):
		return fmt.Errorf("%w: not a clean relative slash path", ErrInvalidName)
	case strings.ContainsAny(name, "\\\x00"):
		return fmt.Errorf("%w: contains a backslash or NUL", ErrInvalidName)
	case strings.HasPrefix(path.Base(name), tmpPrefix):
		return fmt.Errorf("%w: %s* names files being written", ErrInvalidName, tmpPrefix)
	}
	return nil
}

// isOwnFile reports whether name is one of the files the bundle writes.
func isOwnFile(name string) bool {
	switch name {
	case ManifestFile, CustodyFile, StatementFile, EnvelopeFile, ReportFile, IndexFile:
		return true
	}
	return false
}

// custodyData is the data of a custody record: the Entry but its action,
// which is the record's type, and, for entries appended after sealing,
// their signature.
type custodyData struct {
	Detail  json.RawMessage `json:"detail,omitempty"`
	Actor   string          `json:"actor,omitempty"`
	OSUser  string          `json:"osUser,omitempty"`
	Host    string          `json:"host,omitempty"`
	Version string          `json:"version,omitempty"`
	Sig     *envelopeSig    `json:"sig,omitempty"`
}

func entryData(e Entry) (custodyData, error) {
	d := custodyData{Actor: e.Actor, OSUser: e.OSUser, Host: e.Host, Version: e.Version}
	if e.Detail != nil {
		raw, err := json.Marshal(e.Detail)
		if err != nil {
			return custodyData{}, fmt.Errorf("encoding %s detail: %w", e.Action, err)
		}
		d.Detail = raw
	}
	return d, nil
}

// fewPaths is how many files and directories sync fsyncs one by one
// rather than with a syncfs(2).
const fewPaths = 16
