package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"kir.dev/kir/internal/journal"
)

var (
	// ErrSignerRequired is returned by AppendCustody without a signer for
	// a bundle sealed with a signature: every entry appended to it must be
	// signed.
	ErrSignerRequired = errors.New("the bundle is signed: entries appended to it must be signed too")
	// ErrCustodyChanged is returned by AppendCustody when the sealed part
	// of custody.log no longer matches manifest.json: kir does not extend
	// a log that was tampered with.
	ErrCustodyChanged = errors.New("custody.log changed since sealing")
	// ErrWrongKey is returned by AppendCustody for a signer other than the
	// one the bundle was sealed with: verify would reject its entry.
	ErrWrongKey = errors.New("wrong signing key")
)

// AppendCustody appends e to the custody log of the sealed bundle in dir,
// as release, export, push and verify do, on any machine. It fills OSUser
// and Host when empty; the caller gives Actor and Version.
//
// The entry is chained to the previous line like every other and, when
// signer is not nil, signed: its data holds "sig", a DSSE signature
// (keyid, sig) over the entry's line as it would be without "sig", with
// payload type application/vnd.kir.custody.v1+json. A bundle sealed with a
// signature takes signed entries only (ErrSignerRequired).
func AppendCustody(dir string, e Entry, signer Signer) (err error) {
	if e.Action == "" {
		return errors.New("appending custody: entry has no action")
	}
	if e.OSUser == "" {
		e.OSUser = osUser()
	}
	if e.Host == "" {
		e.Host, _ = os.Hostname()
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("appending custody %s to %s: %w", e.Action, dir, err)
		}
	}()
	mb, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotSealed
	}
	if err != nil {
		return err
	}
	m, err := decodeManifest(mb)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ManifestFile, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, EnvelopeFile)); err == nil && signer == nil {
		return ErrSignerRequired
	}
	data, err := entryData(e)
	if err != nil {
		return err
	}

	path := filepath.Join(dir, CustodyFile)
	// Sealed, the log is read-only; it is writable only while appending.
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	defer func() {
		if cerr := os.Chmod(path, 0o444); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// The writer's clock is fixed so that the time signed is the time
	// appended.
	now := time.Now().UTC()
	w, recs, err := journal.ReopenFile(path, journal.WithClock(func() time.Time { return now }))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := w.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// Read under the writer's lock, and after ReopenFile dropped any torn
	// line: the bytes are the log the entry extends.
	log, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if m.Custody.Size < 0 || int64(len(log)) < m.Custody.Size || sha256Hex(log[:m.Custody.Size]) != m.Custody.SHA256 {
		return ErrCustodyChanged
	}
	if signer != nil {
		if want := sealKeyID(recs); want != "" && signer.KeyID() != want {
			return fmt.Errorf("%w: the bundle was sealed with key %s, not %s", ErrWrongKey, want, signer.KeyID())
		}
		next := journal.Record{Seq: len(recs) + 1, Time: now, Type: e.Action}
		if len(recs) > 0 {
			next.Prev = recs[len(recs)-1].Hash()
		}
		body, err := unsignedLine(next, data)
		if err != nil {
			return err
		}
		sig, err := sign(signer, PayloadTypeCustody, body)
		if err != nil {
			return err
		}
		data.Sig = &sig
	}
	_, err = w.Append(e.Action, data)
	return err
}

// unsignedLine is the line of the custody record rec with data d but
// without d's signature: what that signature signs. The verifier rebuilds
// it from the line read, which kir wrote with the same encoder, so the
// bytes agree; a line re-encoded by another tool fails to verify.
func unsignedLine(rec journal.Record, d custodyData) ([]byte, error) {
	d.Sig = nil
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return json.Marshal(journal.Record{Seq: rec.Seq, Time: rec.Time, Type: rec.Type, Data: raw, Prev: rec.Prev})
}

// decodeData decodes a custody record's data strictly.
func decodeData(raw json.RawMessage) (custodyData, error) {
	var d custodyData
	if len(raw) == 0 {
		return d, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return custodyData{}, fmt.Errorf("not a custody entry: %w", err)
	}
	return d, nil
}

// entryOf is the Entry a custody record holds.
func entryOf(rec journal.Record, d custodyData) Entry {
	e := Entry{Action: rec.Type, Actor: d.Actor, OSUser: d.OSUser, Host: d.Host, Version: d.Version}
	if len(d.Detail) > 0 {
		e.Detail = d.Detail
	}
	return e
}

// decodeManifest decodes manifest.json strictly.
func decodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := decodeStrict(b, &m); err != nil {
		return Manifest{}, err
	}
	if m.APIVersion != APIVersion || m.Kind != ManifestKind {
		return Manifest{}, fmt.Errorf("apiVersion %q kind %q, want %s %s", m.APIVersion, m.Kind, APIVersion, ManifestKind)
	}
	return m, nil
}

// decodeStrict decodes exactly one JSON value, rejecting unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}
