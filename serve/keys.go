package serve

import (
	"strings"
	"sync"
	"time"
)

// keyTable deduplicates within this process: one run per key at a time,
// the key's other alerts waiting for it, and none after it until its
// window ends.
type keyTable struct {
	mu sync.Mutex
	m  map[string]*keyState
}

type keyState struct {
	busy    bool      // a task of the key is claiming or running
	until   time.Time // after a run: its alerts are duplicates until then
	waiters []*task   // arrived while busy: resolved when the run ends
	// retry, after a run that failed for a transient reason, is the run
	// the key's next alert after until resumes (when there are no
	// claims across replicas: the claim says it otherwise).
	retry *retryState
}

type retryState struct {
	run      string
	attempts int
}

func newKeyTable() *keyTable { return &keyTable{m: map[string]*keyState{}} }

// enter says what to do with t: run it (the key is free), or nothing now
// because a run covers it — duplicate says the run has finished (resolve
// t at once); otherwise t waits for the running one.
func (k *keyTable) enter(key string, t *task, now time.Time) (run, duplicate bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.m[key]
	if st == nil {
		st = &keyState{}
		k.m[key] = st
	}
	switch {
	case st.busy:
		// Only the key's running task needs the alert; the uuid, which
		// shares the alert's one copy of its body (falco.Decode), is
		// copied so that a waiting task holds 36 bytes, not the body.
		t.alert, t.uuid = nil, strings.Clone(t.uuid)
		st.waiters = append(st.waiters, t)
		return false, false
	case now.Before(st.until):
		return false, true
	}
	st.busy = true
	if st.retry != nil {
		t.resume, t.attempts = st.retry.run, st.retry.attempts
	}
	return true, false
}

// finish ends the key's run: its alerts are duplicates until now+window.
// It returns the tasks that waited.
func (k *keyTable) finish(key string, now time.Time, window time.Duration) []*task {
	return k.end(key, now, window, nil)
}

// retry ends the key's run, which failed for a transient reason: its
// alerts are duplicates until now+backoff; the first after resumes it.
func (k *keyTable) retry(key string, now time.Time, backoff time.Duration, run string, attempts int) []*task {
	return k.end(key, now, backoff, &retryState{run: run, attempts: attempts})
}

func (k *keyTable) end(key string, now time.Time, window time.Duration, retry *retryState) []*task {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.m[key]
	if st == nil {
		st = &keyState{}
		k.m[key] = st
	}
	st.busy = false
	st.until = now.Add(window)
	st.retry = retry
	w := st.waiters
	st.waiters = nil
	if len(k.m) > 4096 {
		// A retry past its backoff goes too: the key's next alert
		// then starts a run of its own.
		for key, st := range k.m {
			if !st.busy && now.After(st.until) {
				delete(k.m, key)
			}
		}
	}
	return w
}
