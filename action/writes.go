package action

import "sync"

// WriteLog sends writes according to the dry-run mode and records each one,
// so that a result always says exactly which writes happened, even when a
// later one fails. It is safe for concurrent use.
type WriteLog struct {
	// Dry is the dry-run mode of every write.
	Dry    DryRun
	mu     sync.Mutex
	writes []Write
}

// Do sends one write (unless this is a client dry run) and records it. In
// a server dry run the recorded body is the object the server returned,
// which is what would have been persisted: a write whose answer may hold a
// secret records its own body with Add instead.
func (l *WriteLog) Do(w Write, send func() (any, error)) error {
	if !l.Dry.Writes() {
		l.Add(w)
		return nil
	}
	obj, err := send()
	if err != nil {
		w.Error = err.Error()
	} else {
		w.Done = true
		if l.Dry == DryRunServer && obj != nil {
			w.Body = obj
		}
	}
	l.Add(w)
	return err
}

// Add records a write as it is.
func (l *WriteLog) Add(w Write) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, w)
}

// Writes returns the writes recorded so far, in order.
func (l *WriteLog) Writes() []Write {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Write(nil), l.writes...)
}
