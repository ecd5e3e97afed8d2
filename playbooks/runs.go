package playbooks

import (
	"encoding/json"

	"kir.dev/kir/internal/journal"
)

// Runs is the folder of run journals: one append-only, hash-chained file a
// run (see the journal format in kir's docs). Open it with OpenRuns and
// give it to an Engine; several engines, and several processes, may share
// one.
type Runs struct {
	store *journal.Store
}

// OpenRuns opens (creating it if needed) the folder of run journals dir.
func OpenRuns(dir string) (*Runs, error) {
	s, err := journal.Open(dir)
	if err != nil {
		return nil, err
	}
	return &Runs{store: s}, nil
}

// Dir is the folder of the run journals.
func (r *Runs) Dir() string { return r.store.Dir() }

// Path is the file of run id's journal, whether or not it exists.
func (r *Runs) Path(id string) (string, error) { return r.store.Path(id) }

// IDs lists the runs that have a journal, oldest first.
func (r *Runs) IDs() ([]string, error) { return r.store.List() }

// Recorded is a journal record of a run, as Engine.Observe sees it once it
// is durable.
type Recorded struct {
	// Type is the record's type, such as "step-finished".
	Type string
	// Step is the name of the step the record is about; "" for a record
	// of the whole run.
	Step string
}

// recorded describes rec for Observe.
func recorded(rec journal.Record) Recorded {
	var d struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(rec.Data, &d) // a record without a step name has none
	return Recorded{Type: rec.Type, Step: d.Name}
}

// Errors of Runs and of an Engine's Load, Resume and List, for errors.Is.
var (
	// ErrRunNotFound: no run has that id (or its journal has no record).
	ErrRunNotFound = journal.ErrNotFound
	// ErrRunLocked: another writer, in this process or another, has the
	// run's journal open.
	ErrRunLocked = journal.ErrLocked
)
