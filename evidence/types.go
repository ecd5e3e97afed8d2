package evidence

import (
	"encoding/json"
	"io"
	"time"
)

// Source says where a file of evidence came from.
type Source struct {
	// Kind is what the file holds: log, manifest, events, image,
	// checkpoint, journal, alert, note.
	Kind string `json:"kind"`
	// Cluster is the API server's URL.
	Cluster   string `json:"cluster,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	UID       string `json:"uid,omitempty"`
	Container string `json:"container,omitempty"`
	Node      string `json:"node,omitempty"`
	// Image is the image reference by digest (repo@sha256:…).
	Image string `json:"image,omitempty"`
	// Object names the Kubernetes object of a manifest: kind/namespace/name.
	Object string `json:"object,omitempty"`
	// AuditID is the API server's Audit-Id of the request that read it.
	AuditID string `json:"auditID,omitempty"`
	// Collected is when it was read, UTC; the writer sets it when zero.
	Collected time.Time `json:"collected"`
	// Truncated is set when a size bound cut the content; Note says how.
	Truncated bool   `json:"truncated,omitempty"`
	Note      string `json:"note,omitempty"`
	// Sensitive marks content an auditor must handle with care (process
	// memory of a checkpoint).
	Sensitive bool `json:"sensitive,omitempty"`
}

// File is one file of a bundle, as manifest.json lists it.
type File struct {
	// Path is slash-separated, relative to the bundle's root.
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // hex
	Size   int64  `json:"size"`
	Source Source `json:"source"`
}

// Sink receives the files of a bundle. *Bundle implements it.
type Sink interface {
	// Put writes the file name (slash-separated, inside the bundle) with
	// the content of r: created exclusively under a temporary name, hashed
	// while written, made read-only and renamed into place. It
	// fails if name exists or is not a clean relative path.
	Put(name string, r io.Reader, src Source) (File, error)
	// Custody appends an entry to the bundle's custody log.
	Custody(e Entry) error
}

// Entry is one line of custody.log: something done to or for the
// evidence, by whom and when.
type Entry struct {
	// Action says what was done: create, collect, contain, run,
	// run-step, alert, seal, release, export, push, verify, note. Required.
	Action string `json:"action"`
	// Detail is free text or structured data about it; never a secret.
	Detail any `json:"detail,omitempty"`
	// Actor is the identity the API server knows kir as; OSUser the user
	// kir ran as on its machine. A Bundle fills the actor, OSUser, Host and
	// the version when empty; AppendCustody fills OSUser and Host.
	Actor  string `json:"actor,omitempty"`
	OSUser string `json:"osUser,omitempty"`
	// Host is the name of the machine kir ran on; the writer fills it.
	Host string `json:"host,omitempty"`
	// Version is kir's version.
	Version string `json:"version,omitempty"`
}

// collectedLayout is RFC 3339 with all nine digits of nanoseconds, so that
// the manifest shows the full precision and its times sort as text.
const collectedLayout = "2006-01-02T15:04:05.000000000Z07:00"

// MarshalJSON writes Collected in UTC with nanoseconds
// ("2026-01-02T03:04:05.120000000Z"); it decodes as any RFC 3339 time.
func (s Source) MarshalJSON() ([]byte, error) {
	type plain Source // without this method
	return json.Marshal(struct {
		plain
		Collected string `json:"collected"`
	}{plain(s), s.Collected.UTC().Format(collectedLayout)})
}
