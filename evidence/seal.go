package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/internal/journal"
)

// Identifiers of the bundle's formats.
const (
	// APIVersion and ManifestKind head manifest.json.
	APIVersion   = "kir.dev/v1alpha1"
	ManifestKind = "EvidenceManifest"
	// StatementType is the in-toto Statement version of statement.json.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is the type of statement.json's predicate.
	PredicateType = "https://kir.dev/evidence/v1"
)

// Manifest is manifest.json: every evidence file of a sealed bundle and the
// custody log as it was when sealed.
type Manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Incident   string `json:"incident"`
	// Created is when the bundle was created, Sealed when it was sealed.
	Created time.Time `json:"created"`
	Sealed  time.Time `json:"sealed"`
	// Who sealed it.
	Actor      string `json:"actor,omitempty"`
	OSUser     string `json:"osUser,omitempty"`
	Host       string `json:"host,omitempty"`
	KirVersion string `json:"kirVersion,omitempty"`
	// Custody is the custody log up to and including the seal entry.
	Custody SealedLog `json:"custody"`
	// Files are the evidence files and report.html, sorted by path; not the
	// bundle's other own files.
	Files []File `json:"files"`
}

// SealedLog pins the custody log as it was when the bundle was sealed:
// entries appended later extend it but leave these bytes alone.
type SealedLog struct {
	Path string `json:"path"`
	// Size is the length in bytes of the sealed part, SHA256 its hex
	// SHA-256, Entries its number of lines.
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Entries int    `json:"entries"`
	// Head is the hash of its last line: the prev of the first entry
	// appended after sealing.
	Head string `json:"head"`
}

// Statement is statement.json: an in-toto Statement v1 whose subjects are
// every file sealed, and whose predicate says what the bundle is.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is one file a Statement covers.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is the https://kir.dev/evidence/v1 predicate.
type Predicate struct {
	Incident   string    `json:"incident"`
	Sealed     time.Time `json:"sealed"`
	Actor      string    `json:"actor,omitempty"`
	OSUser     string    `json:"osUser,omitempty"`
	Host       string    `json:"host,omitempty"`
	KirVersion string    `json:"kirVersion,omitempty"`
	// Files and Bytes count the evidence files (report.html included).
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Custody is the sealed part of custody.log; its subject digest is
	// that part's.
	Custody SealedLog `json:"custody"`
}

// sealDetail is the custody detail of the seal entry.
type sealDetail struct {
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
	KeyID string `json:"keyID,omitempty"`
}

// Seal finishes the bundle: it records a "seal" custody entry, then writes
// report.html, manifest.json, statement.json and, if signer is not nil,
// statement.dsse.json. Put and Custody fail afterwards; AppendCustody adds
// entries to the sealed bundle. A Seal that failed leaves the bundle
// unsealed for good: create a new one.
func (b *Bundle) Seal(signer Signer) error {
	b.mu.Lock()
	if b.state != open {
		b.mu.Unlock()
		return fmt.Errorf("sealing: %w", ErrSealed)
	}
	b.state = sealing
	b.mu.Unlock()
	b.inflight.Wait() // no Put is between reservation and record now
	if err := b.seal(signer); err != nil {
		b.closeLogs()
		return fmt.Errorf("sealing %s: %w", b.dir, err)
	}
	b.mu.Lock()
	b.state = sealed
	b.mu.Unlock()
	return nil
}

func (b *Bundle) seal(signer Signer) error {
	files := b.Files()
	d := sealDetail{Files: len(files)}
	for _, f := range files {
		d.Bytes += f.Size
	}
	if signer != nil {
		d.KeyID = signer.KeyID()
	}
	data, err := entryData(Entry{Action: "seal", Detail: d, Actor: b.opts.Actor, OSUser: b.opts.OSUser, Host: b.opts.Host, Version: b.opts.Version})
	if err != nil {
		return err
	}
	if _, err := b.custody.Append("seal", data); err != nil {
		return err
	}
	if err := b.custody.Close(); err != nil {
		return err
	}
	custodyPath := filepath.Join(b.dir, CustodyFile)
	log, err := os.ReadFile(custodyPath)
	if err != nil {
		return err
	}
	recs, err := journal.ReadFrom(bytes.NewReader(log), custodyPath)
	if err != nil {
		return err
	}
	sealedAt := b.opts.Now().UTC()
	sl := sealLog(log, recs.Records)

	nodes := readNodes(b.dir, files)
	html, err := renderReport(reportData{
		Incident: b.opts.Incident, Created: b.created, Sealed: sealedAt,
		Actor: b.opts.Actor, OSUser: b.opts.OSUser, Host: b.opts.Host, Version: b.opts.Version,
		Files: files, Custody: recs.Records, Log: sl, KeyID: d.KeyID,
		Alerts: readAlerts(b.dir, files), Nodes: nodes,
	})
	if err != nil {
		return fmt.Errorf("rendering %s: %w", ReportFile, err)
	}
	report, err := b.put(ReportFile, bytes.NewReader(html), reportFileSource(sealedAt, nodes))
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.files = append(b.files, report)
	b.mu.Unlock()
	files = append(files, report)
	sortFiles(files)

	m := Manifest{
		APIVersion: APIVersion, Kind: ManifestKind, Incident: b.opts.Incident,
		Created: b.created, Sealed: sealedAt,
		Actor: b.opts.Actor, OSUser: b.opts.OSUser, Host: b.opts.Host, KirVersion: b.opts.Version,
		Custody: sl, Files: files,
	}
	mb, err := marshalFile(m)
	if err != nil {
		return err
	}
	if _, _, err := b.writeOnce(ManifestFile, bytes.NewReader(mb)); err != nil {
		return err
	}
	sb, err := marshalFile(statementFor(m, sha256Hex(mb)))
	if err != nil {
		return err
	}
	if _, _, err := b.writeOnce(StatementFile, bytes.NewReader(sb)); err != nil {
		return err
	}
	if signer != nil {
		env, err := signEnvelope(signer, PayloadTypeInToto, sb)
		if err != nil {
			return err
		}
		if _, _, err := b.writeOnce(EnvelopeFile, bytes.NewReader(env)); err != nil {
			return err
		}
	}
	// manifest.json lists the files now; the index was for reopening.
	if err := b.index.Close(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(b.dir, IndexFile)); err != nil {
		return err
	}
	// The log keeps growing by AppendCustody, which lifts this for the
	// length of an append.
	if err := os.Chmod(custodyPath, 0o444); err != nil {
		return err
	}
	return b.sync()
}

// sealLog describes log, whose records are recs, as sealed now.
func sealLog(log []byte, recs []journal.Record) SealedLog {
	sl := SealedLog{Path: CustodyFile, Size: int64(len(log)), SHA256: sha256Hex(log), Entries: len(recs)}
	if len(recs) > 0 {
		sl.Head = recs[len(recs)-1].Hash()
	}
	return sl
}

// statementFor is the statement of the bundle m describes, whose
// manifest.json hashes to manifestSum.
func statementFor(m Manifest, manifestSum string) Statement {
	p := Predicate{
		Incident: m.Incident, Sealed: m.Sealed,
		Actor: m.Actor, OSUser: m.OSUser, Host: m.Host, KirVersion: m.KirVersion,
		Files: len(m.Files), Custody: m.Custody,
	}
	for _, f := range m.Files {
		p.Bytes += f.Size
	}
	return Statement{
		Type:          StatementType,
		Subject:       subjectsFor(m.Files, manifestSum, m.Custody.SHA256),
		PredicateType: PredicateType,
		Predicate:     p,
	}
}

// subjectsFor lists, sorted by name, the files a statement must cover.
func subjectsFor(files []File, manifestSum, custodySum string) []Subject {
	subs := make([]Subject, 0, len(files)+2)
	for _, f := range files {
		subs = append(subs, Subject{Name: f.Path, Digest: map[string]string{"sha256": f.SHA256}})
	}
	subs = append(subs,
		Subject{Name: ManifestFile, Digest: map[string]string{"sha256": manifestSum}},
		Subject{Name: CustodyFile, Digest: map[string]string{"sha256": custodySum}},
	)
	sortSubjects(subs)
	return subs
}

func sortSubjects(subs []Subject) {
	slices.SortFunc(subs, func(a, b Subject) int { return strings.Compare(a.Name, b.Name) })
}

func marshalFile(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
