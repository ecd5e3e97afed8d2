package evidence

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/internal/durable"
	"kir.dev/kir/internal/journal"
)

// IndexFile lists, one journal record per file, what an unsealed bundle
// holds, so that a later step or process can reopen it with Open. Seal
// removes it: manifest.json takes its place.
const IndexFile = ".kir-index.jsonl"

// Open reopens the unsealed bundle in dir to write more into it, as a
// playbook's later step (or a resumed run) does; it returns ErrSealed for a
// sealed one. What a crash left half done is put right and recorded in
// custody: a file on disk that the index does not list (written, but not
// recorded) is removed, so that the step that wrote it writes it again. The
// incident must be the bundle's own.
func Open(dir string, opts Options) (*Bundle, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("opening bundle: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, ManifestFile)); err == nil {
		return nil, fmt.Errorf("opening bundle %s: %w", dir, ErrSealed)
	}
	custody, recs, err := journal.ReopenFile(filepath.Join(dir, CustodyFile), journal.WithClock(opts.Now), journal.Lazy())
	if err != nil {
		return nil, fmt.Errorf("opening bundle: %w", err)
	}
	b := &Bundle{dir: dir, opts: opts, names: map[string]bool{}, custody: custody}
	fail := func(err error) (*Bundle, error) {
		b.closeLogs()
		return nil, fmt.Errorf("opening bundle %s: %w", dir, err)
	}
	indexPath := filepath.Join(dir, IndexFile)
	if len(recs) == 0 {
		// Create stopped before its first entry: finish creating.
		b.created = opts.Now().UTC()
		if err := b.Custody(Entry{Action: "create", Detail: map[string]string{"incident": opts.Incident}}); err != nil {
			return fail(err)
		}
	} else {
		if recs[0].Type != "create" {
			return fail(errors.New("custody.log does not start with a create entry"))
		}
		b.created = recs[0].Time.UTC()
		d, err := decodeData(recs[0].Data)
		if err != nil {
			return fail(err)
		}
		if inc := incidentOf(d); inc != opts.Incident {
			return fail(fmt.Errorf("it belongs to incident %q, not %q", inc, opts.Incident))
		}
	}
	var irecs []journal.Record
	if _, err := os.Lstat(indexPath); errors.Is(err, fs.ErrNotExist) {
		// Create stopped before the index: nothing was put yet.
		b.index, err = journal.CreateFile(indexPath, journal.WithClock(opts.Now), journal.Lazy())
		if err != nil {
			return fail(err)
		}
	} else {
		b.index, irecs, err = journal.ReopenFile(indexPath, journal.WithClock(opts.Now), journal.Lazy())
		if err != nil {
			return fail(err)
		}
	}
	at := map[string]int{} // path → its entry in b.files: a later record wins
	for _, r := range irecs {
		var f File
		if err := json.Unmarshal(r.Data, &f); err != nil {
			return fail(fmt.Errorf("%s:%d: %w", IndexFile, r.Seq, err))
		}
		if i, ok := at[f.Path]; ok {
			b.files[i] = f
			continue
		}
		at[f.Path] = len(b.files)
		b.files = append(b.files, f)
	}
	// A machine that lost power mid-step may keep an index line whose file
	// did not reach the disk whole: such a file is collected again.
	var lost []string
	kept := b.files[:0]
	for _, f := range b.files {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Size {
			lost = append(lost, f.Path)
			continue
		}
		kept = append(kept, f)
		b.names[f.Path] = true
	}
	b.files = kept
	removed, err := b.removeUnrecorded()
	if err != nil {
		return fail(err)
	}
	if len(removed) > 0 || len(lost) > 0 {
		if err := b.Custody(Entry{Action: "note", Detail: map[string]any{
			"part": "reopen", "note": "removed files written but not recorded, or recorded but not whole, when kir stopped; they are collected again",
			"removed": removed, "lost": lost,
		}}); err != nil {
			return fail(err)
		}
	}
	return b, nil
}

// withDefaults checks and completes the options of a bundle.
func (o Options) withDefaults() (Options, error) {
	if o.Incident == "" {
		return o, errors.New("Options.Incident is empty")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OSUser == "" {
		o.OSUser = osUser()
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	return o, nil
}

// Has reports whether the bundle holds the file name.
func (b *Bundle) Has(name string) (File, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.files, func(f File) bool { return f.Path == name })
	if i < 0 {
		return File{}, false
	}
	return b.files[i], true
}

// removeUnrecorded deletes every file under the bundle that neither the
// index lists nor the bundle writes itself, and returns their names.
func (b *Bundle) removeUnrecorded() ([]string, error) {
	var removed []string
	err := filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(b.dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if b.names[name] || name == CustodyFile || name == IndexFile {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		if !strings.HasPrefix(d.Name(), tmpPrefix) {
			removed = append(removed, name)
		}
		return durable.SyncDir(filepath.Dir(p))
	})
	return removed, err
}

// record adds f to the index, durably, before Put reports it written.
func (b *Bundle) record(f File) error {
	b.indexMu.Lock()
	defer b.indexMu.Unlock()
	_, err := b.index.Append("file", f)
	return err
}

// closeLogs closes the custody log and the index.
func (b *Bundle) closeLogs() error {
	err := b.custody.Close()
	if b.index != nil {
		err = errors.Join(err, b.index.Close())
	}
	return err
}
