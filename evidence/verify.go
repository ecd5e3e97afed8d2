package evidence

import (
	"bytes"
	"cmp"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/internal/journal"
)

// ProblemKind says what is wrong with a bundle.
type ProblemKind string

// What Verify finds wrong.
const (
	// ProblemChanged: a file's content is not what was sealed.
	ProblemChanged ProblemKind = "changed"
	// ProblemMissing: a file sealed (or required) is not there.
	ProblemMissing ProblemKind = "missing"
	// ProblemAdded: a file is there that was not sealed.
	ProblemAdded ProblemKind = "added"
	// ProblemInvalid: a file is not what its name says (manifest.json that is no
	// manifest), or an entry cannot be part of a bundle (a symlink, an
	// unsafe path in an archive).
	ProblemInvalid ProblemKind = "invalid"
	// ProblemCustody: custody.log's hash chain is broken at Line.
	ProblemCustody ProblemKind = "custody"
	// ProblemStatement: statement.json and manifest.json disagree.
	ProblemStatement ProblemKind = "statement"
	// ProblemSignature: a signature is missing, by another key, or does not verify.
	ProblemSignature ProblemKind = "signature"
)

// Problem is one thing wrong with a bundle.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Path is the file, slash-separated, relative to the bundle.
	Path string `json:"path"`
	// Line is the 1-based line of custody.log, for custody problems.
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", p.Path, p.Line, p.Kind, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s", p.Path, p.Kind, p.Message)
}

// Outcome sums a Report up.
type Outcome string

// The outcomes of a verification.
const (
	// Verified: every hash, the custody chain and every signature hold,
	// checked with the key given.
	Verified Outcome = "verified"
	// NotChecked: every hash and the custody chain hold, but no key was
	// given, so no signature was checked.
	NotChecked Outcome = "signature-not-checked"
	// Failed: something does not hold; Report.Problems says what.
	Failed Outcome = "failed"
)

// Report is what Verify found.
type Report struct {
	// Path is the bundle verified.
	Path     string    `json:"path"`
	Incident string    `json:"incident,omitempty"`
	Sealed   time.Time `json:"sealed,omitzero"`
	// Files and Bytes count what was hashed, the bundle's own files
	// included.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// CustodyEntries counts custody.log's intact lines, PostSeal those
	// appended after sealing.
	CustodyEntries int `json:"custodyEntries"`
	PostSeal       int `json:"postSeal"`
	// Signed says the bundle carries a signature (statement.dsse.json).
	Signed bool `json:"signed"`
	// KeyID is the id of the key given, "" without one.
	KeyID string `json:"keyID,omitempty"`
	// SignatureVerified says the statement's signature and those of every
	// entry appended after sealing verified with the key given. False
	// without a key: see Outcome.
	SignatureVerified bool `json:"signatureVerified"`
	// Problems lists everything wrong, sorted by path and line.
	Problems []Problem `json:"problems"`
}

// Outcome is Failed if there is any problem, NotChecked if all holds but
// no key was given, Verified otherwise.
func (r *Report) Outcome() Outcome {
	switch {
	case len(r.Problems) > 0:
		return Failed
	case !r.SignatureVerified:
		return NotChecked
	}
	return Verified
}

// Verify checks the bundle at path, a directory or a .tar.gz (read in one
// pass, not extracted). It recomputes every file's hash and compares it
// with manifest.json and statement.json, names every file changed, missing
// or added, checks custody.log's hash chain and that its sealed part is
// unchanged, and, when pub is not nil, the signature of the statement and
// of every custody entry appended after sealing. With pub nil, hashes and
// custody are checked and the outcome is NotChecked at best.
//
// Everything wrong is in Report.Problems; the error is for failures that
// keep Verify from reading the bundle at all.
func Verify(path string, pub crypto.PublicKey) (*Report, error) {
	c := checker{rep: &Report{Path: path}, pub: pub}
	if pub != nil {
		id, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("verifying %s: %w", path, err)
		}
		c.keyID, c.rep.KeyID = id, id
	}
	t, err := readTree(path, true)
	if err != nil {
		return nil, fmt.Errorf("verifying %s: %w", path, err)
	}
	c.t = t
	c.check()
	return c.rep, nil
}

// checker holds one verification's state.
type checker struct {
	t     *tree
	pub   crypto.PublicKey
	keyID string
	rep   *Report

	// stmt is the statement files are checked against: the signed one
	// when statement.json differs from it, else statement.json.
	stmt *Statement
	// manifest is manifest.json, if readable; trusted when the statement
	// seals it (or there is no statement to say otherwise).
	manifest *Manifest
	trusted  bool
	// seal is the custody log as sealed, from the manifest or statement.
	seal *SealedLog
	// signed says the bundle was sealed with a signature: it carries an
	// envelope, or its seal entry names a key.
	signed bool
	// sigOK says the statement's signature verified with pub.
	sigOK bool
	// postSealOK says every entry appended after sealing verified.
	postSealOK bool
}

func (c *checker) problem(kind ProblemKind, path string, line int, format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, Problem{Kind: kind, Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

// reported says whether a problem names path already.
func (c *checker) reported(path string) bool {
	return slices.ContainsFunc(c.rep.Problems, func(p Problem) bool { return p.Path == path })
}

func (c *checker) check() {
	c.rep.Problems = append(c.rep.Problems, c.t.problems...)
	for _, d := range c.t.files {
		c.rep.Files++
		c.rep.Bytes += d.Size
	}
	c.postSealOK = true
	c.statement()
	c.manifestFile()
	c.crossCheck()
	c.files()
	c.custody()
	if c.pub != nil && !c.rep.Signed && !c.reported(EnvelopeFile) {
		c.problem(ProblemMissing, EnvelopeFile, 0, "the bundle is not signed, but a key was given")
	}
	c.rep.SignatureVerified = c.pub != nil && c.sigOK && c.postSealOK
	slices.SortFunc(c.rep.Problems, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line),
			strings.Compare(string(a.Kind), string(b.Kind)), strings.Compare(a.Message, b.Message))
	})
}

// statement reads statement.json and statement.dsse.json, and checks the
// signature.
func (c *checker) statement() {
	sb, haveS := c.t.meta[StatementFile]
	if haveS {
		var st Statement
		if err := decodeStrict(sb, &st); err != nil {
			c.problem(ProblemInvalid, StatementFile, 0, "not an in-toto statement: %v", err)
		} else if err := checkStatementType(st); err != nil {
			c.problem(ProblemInvalid, StatementFile, 0, "%v", err)
		} else {
			c.stmt = &st
		}
	} else {
		c.problem(ProblemMissing, StatementFile, 0, "no %s: the bundle was not sealed, or it was removed", StatementFile)
	}

	eb, haveE := c.t.meta[EnvelopeFile]
	c.rep.Signed, c.signed = haveE, haveE
	if !haveE {
		return
	}
	var env envelope
	if err := decodeStrict(eb, &env); err != nil {
		c.problem(ProblemInvalid, EnvelopeFile, 0, "not a DSSE envelope: %v", err)
		return
	}
	if env.PayloadType != PayloadTypeInToto {
		c.problem(ProblemInvalid, EnvelopeFile, 0, "payload type %q, want %s", env.PayloadType, PayloadTypeInToto)
		return
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		c.problem(ProblemInvalid, EnvelopeFile, 0, "payload is not base64: %v", err)
		return
	}
	if c.pub != nil && !c.verifyEnvelope(env, payload) {
		return // the envelope is what is wrong; statement.json stays the reference
	}
	if haveS && bytes.Equal(payload, sb) {
		return
	}
	// statement.json is not the statement signed: which one is this
	// bundle's? With the key, the signed one is authentic; it is this
	// bundle's if it seals its manifest.json or its custody log. Without
	// the key, the signed one is taken for this bundle's only if it seals
	// the manifest.json present.
	var signed Statement
	if err := decodeStrict(payload, &signed); err != nil || checkStatementType(signed) != nil {
		c.problem(ProblemInvalid, EnvelopeFile, 0, "the payload is not a kir evidence statement")
		c.sigOK = false
		return
	}
	have := c.t.files[ManifestFile].SHA256
	manifestSealed := have != "" && subjectDigest(signed, ManifestFile) == have
	if manifestSealed || c.sigOK && c.sealsCustody(signed.Predicate.Custody) {
		if haveS {
			c.problem(ProblemChanged, StatementFile, 0, "differs from the statement signed in %s", EnvelopeFile)
		}
		c.stmt = &signed
		return
	}
	c.sigOK = false
	c.problem(ProblemSignature, EnvelopeFile, 0, "signs a statement that is not %s and seals neither this %s nor this %s: "+
		"another bundle's signature (incident %q, sealed %s), or the files it seals were rewritten",
		StatementFile, ManifestFile, CustodyFile, signed.Predicate.Incident, signed.Predicate.Sealed.Format(time.RFC3339Nano))
}

// verifyEnvelope checks the envelope's signature by the key given,
// reporting a problem if there is none that verifies.
func (c *checker) verifyEnvelope(env envelope, payload []byte) bool {
	var others []string
	for _, s := range env.Signatures {
		if s.KeyID != c.keyID {
			others = append(others, s.KeyID)
			continue
		}
		if verifySig(c.pub, PayloadTypeInToto, payload, s) {
			c.sigOK = true
			return true
		}
		c.problem(ProblemSignature, EnvelopeFile, 0, "the signature by key %s does not verify", c.keyID)
		return false
	}
	c.problem(ProblemSignature, EnvelopeFile, 0, "not signed by key %s (signed by %s)", c.keyID, strings.Join(others, ", "))
	return false
}

// sealsCustody reports whether custody.log begins with the part sl seals.
func (c *checker) sealsCustody(sl SealedLog) bool {
	log, ok := c.t.meta[CustodyFile]
	return ok && sl.Size >= 0 && sl.Size <= int64(len(log)) && sha256Hex(log[:sl.Size]) == sl.SHA256
}

func checkStatementType(st Statement) error {
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return fmt.Errorf("_type %q predicateType %q, want %s %s", st.Type, st.PredicateType, StatementType, PredicateType)
	}
	return nil
}

// subjectDigest returns the sha256 of the subject name of st, or "".
func subjectDigest(st Statement, name string) string {
	for _, s := range st.Subject {
		if s.Name == name {
			return s.Digest["sha256"]
		}
	}
	return ""
}

// manifestFile reads manifest.json and decides whether to trust it: only
// if the statement seals it, or there is no statement.
func (c *checker) manifestFile() {
	mb, ok := c.t.meta[ManifestFile]
	if !ok {
		c.problem(ProblemMissing, ManifestFile, 0, "no %s: the bundle was not sealed, or it was removed", ManifestFile)
		return
	}
	if c.stmt != nil {
		if want := subjectDigest(*c.stmt, ManifestFile); want != c.t.files[ManifestFile].SHA256 {
			c.problem(ProblemChanged, ManifestFile, 0, "sha256 %s, the statement seals %s", c.t.files[ManifestFile].SHA256, want)
			return
		}
	}
	m, err := decodeManifest(mb)
	if err != nil {
		c.problem(ProblemInvalid, ManifestFile, 0, "not a manifest: %v", err)
		return
	}
	c.manifest, c.trusted = &m, true
	c.rep.Incident, c.rep.Sealed = m.Incident, m.Sealed
	c.seal = &m.Custody
}

// crossCheck compares the statement with the trusted manifest: subjects
// and predicate must be what sealing the manifest gives.
func (c *checker) crossCheck() {
	if c.stmt == nil {
		return
	}
	p := c.stmt.Predicate
	if !c.trusted {
		c.rep.Incident, c.rep.Sealed = p.Incident, p.Sealed
		c.seal = &p.Custody
		return
	}
	m := c.manifest
	got := map[string]string{}
	for _, s := range c.stmt.Subject {
		if _, dup := got[s.Name]; dup {
			c.problem(ProblemStatement, s.Name, 0, "a subject of the statement more than once")
		}
		got[s.Name] = s.Digest["sha256"]
	}
	for _, s := range subjectsFor(m.Files, c.t.files[ManifestFile].SHA256, m.Custody.SHA256) {
		g, ok := got[s.Name]
		switch {
		case !ok:
			c.problem(ProblemStatement, s.Name, 0, "in %s but not a subject of the statement", ManifestFile)
		case g != s.Digest["sha256"]:
			c.problem(ProblemStatement, s.Name, 0, "the statement says sha256 %s, %s %s", g, ManifestFile, s.Digest["sha256"])
		}
		delete(got, s.Name)
	}
	for name := range got {
		c.problem(ProblemStatement, name, 0, "a subject of the statement but not in %s", ManifestFile)
	}
	want := statementFor(*m, c.t.files[ManifestFile].SHA256).Predicate
	if p.Incident != want.Incident || !p.Sealed.Equal(want.Sealed) || p.Custody != want.Custody ||
		p.Files != want.Files || p.Bytes != want.Bytes {
		c.problem(ProblemStatement, StatementFile, 0, "the predicate disagrees with %s (incident, sealed time, file count or custody)", ManifestFile)
	}
}

// files compares the files present with those sealed.
func (c *checker) files() {
	want := map[string]digest{}
	switch {
	case c.trusted:
		for _, f := range c.manifest.Files {
			if err := checkName(f.Path); err != nil || isMeta(f.Path) {
				c.problem(ProblemInvalid, ManifestFile, 0, "lists %q, which cannot be an evidence file", f.Path)
				continue
			}
			if _, dup := want[f.Path]; dup {
				c.problem(ProblemInvalid, f.Path, 0, "listed in %s more than once", ManifestFile)
			}
			want[f.Path] = digest{SHA256: f.SHA256, Size: f.Size}
		}
	case c.stmt != nil:
		for _, s := range c.stmt.Subject {
			if !isMeta(s.Name) {
				want[s.Name] = digest{SHA256: s.Digest["sha256"], Size: -1}
			}
		}
	default:
		return // nothing says what should be there
	}
	for name, w := range want {
		got, ok := c.t.files[name]
		switch {
		case !ok:
			c.problem(ProblemMissing, name, 0, "sealed but not in the bundle")
		case w.Size >= 0 && (got.SHA256 != w.SHA256 || got.Size != w.Size):
			c.problem(ProblemChanged, name, 0, "sha256 %s (%d bytes), sealed %s (%d bytes)", got.SHA256, got.Size, w.SHA256, w.Size)
		case got.SHA256 != w.SHA256:
			c.problem(ProblemChanged, name, 0, "sha256 %s, sealed %s", got.SHA256, w.SHA256)
		}
	}
	for name := range c.t.files {
		if _, ok := want[name]; !ok && !isMeta(name) {
			c.problem(ProblemAdded, name, 0, "in the bundle but not sealed")
		}
	}
}

// custody checks custody.log: its chain, its sealed part, and the
// signatures of the entries appended after sealing.
func (c *checker) custody() {
	log, ok := c.t.meta[CustodyFile]
	if !ok {
		c.problem(ProblemMissing, CustodyFile, 0, "no %s", CustodyFile)
		c.postSealOK = false
		return
	}
	res, err := journal.ReadFrom(bytes.NewReader(log), CustodyFile)
	if ce := (*journal.CorruptError)(nil); errors.As(err, &ce) {
		c.problem(ProblemCustody, CustodyFile, ce.Line, "%v", ce.Err)
		c.postSealOK = false
	}
	if res.Torn {
		c.problem(ProblemCustody, CustodyFile, len(res.Records)+1, "incomplete last line: an append did not finish")
	}
	recs := res.Records
	c.rep.CustodyEntries = len(recs)
	if c.stmt != nil && c.seal != nil {
		if got := subjectDigest(*c.stmt, CustodyFile); got != c.seal.SHA256 {
			c.problem(ProblemStatement, CustodyFile, 0, "the statement seals sha256 %s of it, %s %s", got, ManifestFile, c.seal.SHA256)
		}
	}
	if c.seal == nil {
		c.postSealOK = false
		return
	}
	s := c.seal
	switch {
	case s.Size < 0 || int64(len(log)) < s.Size:
		c.problem(ProblemChanged, CustodyFile, 0, "%d bytes, shorter than the %d sealed", len(log), s.Size)
		c.postSealOK = false
		return
	case sha256Hex(log[:s.Size]) != s.SHA256:
		c.problem(ProblemChanged, CustodyFile, 0, "its first %d entries (%d bytes), sealed, changed", s.Entries, s.Size)
		c.postSealOK = false
		return
	case len(recs) < s.Entries:
		return // the chain is broken inside the sealed part: reported
	}
	if keyID := sealKeyID(recs[:s.Entries]); keyID != "" {
		c.signed = true
		if !c.rep.Signed {
			c.problem(ProblemMissing, EnvelopeFile, 0, "the seal entry says the bundle was signed by key %s", keyID)
		}
	}
	for _, rec := range recs[s.Entries:] {
		c.rep.PostSeal++
		c.postSealEntry(rec)
	}
}

// sealKeyID returns the key the last seal entry of recs names, if any.
func sealKeyID(recs []journal.Record) string {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Type != "seal" {
			continue
		}
		d, err := decodeData(recs[i].Data)
		if err != nil {
			return ""
		}
		var sd sealDetail
		if json.Unmarshal(d.Detail, &sd) != nil {
			return ""
		}
		return sd.KeyID
	}
	return ""
}

// postSealEntry checks the signature of an entry appended after sealing.
func (c *checker) postSealEntry(rec journal.Record) {
	fail := func(kind ProblemKind, format string, args ...any) {
		c.problem(kind, CustodyFile, rec.Seq, format, args...)
		c.postSealOK = false
	}
	d, err := decodeData(rec.Data)
	switch {
	case err != nil:
		fail(ProblemInvalid, "%v", err)
		return
	case d.Sig == nil && c.signed:
		fail(ProblemSignature, "appended after sealing without a signature")
		return
	case d.Sig == nil || c.pub == nil:
		return
	case d.Sig.KeyID != c.keyID:
		fail(ProblemSignature, "signed by key %s, not by key %s", d.Sig.KeyID, c.keyID)
		return
	}
	body, err := unsignedLine(rec, d)
	if err != nil || !verifySig(c.pub, PayloadTypeCustody, body, *d.Sig) {
		fail(ProblemSignature, "the signature does not verify: the entry changed after it was signed")
	}
}
