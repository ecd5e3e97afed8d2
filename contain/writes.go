package contain

import (
	"sync"

	"kir.dev/kir/internal/action"
)

// journal sends writes according to the dry-run mode and records each one,
// so that a result always says exactly which writes happened, even when a
// later one fails. It is safe for concurrent use.
type journal struct {
	dry    action.DryRun
	mu     sync.Mutex
	writes []action.Write
}

// write sends one write (unless this is a client dry run) and records it.
// In a server dry run the recorded body is the object the server returned,
// which is what would have been persisted.
func (j *journal) write(w action.Write, send func() (any, error)) error {
	if j.dry.Writes() {
		obj, err := send()
		if err != nil {
			w.Error = err.Error()
		} else {
			w.Done = true
			if j.dry == action.DryRunServer && obj != nil {
				w.Body = obj
			}
		}
		j.add(w)
		return err
	}
	j.add(w)
	return nil
}

func (j *journal) add(w action.Write) {
	j.mu.Lock()
	j.writes = append(j.writes, w)
	j.mu.Unlock()
}

// done returns the writes recorded so far.
func (j *journal) done() []action.Write {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]action.Write(nil), j.writes...)
}
