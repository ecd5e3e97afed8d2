package evidence

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"kir.dev/kir/internal/journal"
)

// Summary is what a bundle holds, as `kir evidence show` prints it. It is
// read, not verified: run Verify to trust it.
type Summary struct {
	Path     string `json:"path"`
	Incident string `json:"incident,omitempty"`
	// Sealed is when the bundle was sealed; zero if it was not.
	Sealed time.Time `json:"sealed,omitzero"`
	// Signed says it carries statement.dsse.json; KeyIDs are the keys that
	// signed it.
	Signed bool     `json:"signed"`
	KeyIDs []string `json:"keyIDs,omitempty"`
	// Files are manifest.json's files; for a bundle not sealed, every file
	// present but the bundle's own, with sizes only.
	Files []File `json:"files"`
	Bytes int64  `json:"bytes"`
	// Custody is the timeline: every custody entry, in order.
	Custody []CustodyRecord `json:"custody"`
	// Problems are what kept parts of the bundle from being read.
	Problems []string `json:"problems,omitempty"`
}

// CustodyRecord is one custody entry with when it was recorded.
type CustodyRecord struct {
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	Entry
	// PostSeal marks entries appended after sealing; KeyID is the key
	// that signed such an entry.
	PostSeal bool   `json:"postSeal,omitempty"`
	KeyID    string `json:"keyID,omitempty"`
}

// Show reads the bundle at path, a directory or a .tar.gz, without
// hashing its files.
func Show(path string) (*Summary, error) {
	t, err := readTree(path, false)
	if err != nil {
		return nil, fmt.Errorf("reading bundle %s: %w", path, err)
	}
	s := &Summary{Path: path}
	for _, p := range t.problems {
		s.Problems = append(s.Problems, p.String())
	}
	sealedEntries := -1
	if mb, ok := t.meta[ManifestFile]; ok {
		m, err := decodeManifest(mb)
		if err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %v", ManifestFile, err))
		} else {
			s.Incident, s.Sealed, s.Files = m.Incident, m.Sealed, m.Files
			sealedEntries = m.Custody.Entries
		}
	} else {
		for name, d := range t.files {
			if !isMeta(name) && name != IndexFile {
				s.Files = append(s.Files, File{Path: name, Size: d.Size})
			}
		}
		sortFiles(s.Files)
	}
	for _, f := range s.Files {
		s.Bytes += f.Size
	}
	if eb, ok := t.meta[EnvelopeFile]; ok {
		s.Signed = true
		var env envelope
		if err := decodeStrict(eb, &env); err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %v", EnvelopeFile, err))
		}
		for _, sig := range env.Signatures {
			s.KeyIDs = append(s.KeyIDs, sig.KeyID)
		}
	}
	if s.Incident == "" {
		s.Incident = incidentFromStatement(t.meta[StatementFile])
	}

	log, ok := t.meta[CustodyFile]
	if !ok {
		s.Problems = append(s.Problems, CustodyFile+": missing")
		return s, nil
	}
	res, err := journal.ReadFrom(bytes.NewReader(log), CustodyFile)
	if ce := (*journal.CorruptError)(nil); errors.As(err, &ce) {
		s.Problems = append(s.Problems, ce.Error())
	}
	for i, rec := range res.Records {
		d, err := decodeData(rec.Data)
		if err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("%s:%d: %v", CustodyFile, rec.Seq, err))
			continue
		}
		cr := CustodyRecord{Seq: rec.Seq, Time: rec.Time, Entry: entryOf(rec, d), PostSeal: sealedEntries >= 0 && i >= sealedEntries}
		if d.Sig != nil {
			cr.KeyID = d.Sig.KeyID
		}
		if s.Incident == "" && rec.Type == "create" {
			s.Incident = incidentOf(d)
		}
		s.Custody = append(s.Custody, cr)
	}
	return s, nil
}

// incidentFromStatement reads the incident from statement.json, for a
// bundle whose manifest is unreadable.
func incidentFromStatement(b []byte) string {
	var st Statement
	if b == nil || decodeStrict(b, &st) != nil {
		return ""
	}
	return st.Predicate.Incident
}

// incidentOf reads the incident from a create entry, for a bundle not
// sealed.
func incidentOf(d custodyData) string {
	var v struct{ Incident string }
	if decodeStrict(d.Detail, &v) != nil {
		return ""
	}
	return v.Incident
}
