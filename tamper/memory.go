package tamper

import (
	"context"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/contain"
)

// The guard's memory of the quarantines it guards: a Lease per pod in
// kir's namespace, written by the kir that contained the pod (see
// contain.MemoryLease and the package doc for why there).
const (
	// LabelComponent marks the memory Leases.
	LabelComponent = contain.LabelComponent
	// ComponentMemory is LabelComponent's value on them.
	ComponentMemory = contain.ComponentMemory
)

// MemoryName is the Lease that remembers the quarantine of the pod with
// this UID.
func MemoryName(uid types.UID) string { return contain.MemoryLease(uid) }

func metaOf(name, ns string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }

// memory is what the guard knows, by pod UID; the Leases are its durable
// copy, read on taking the lead and watched.
type memory struct {
	o  Options
	mu sync.Mutex
	by map[types.UID]remembered
}

// remembered is one quarantine and the memory Lease it was read from.
type remembered struct {
	q     contain.Quarantine
	lease types.UID
}

// load reads every memory Lease.
func (m *memory) load(ctx context.Context) error {
	list, err := m.o.Kube.CoordinationV1().Leases(m.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelComponent + "=" + ComponentMemory})
	if err != nil {
		return fmt.Errorf("reading the tamper guard's memory (Leases in %s): %w", m.o.Namespace, err)
	}
	by := map[types.UID]remembered{}
	for _, l := range list.Items {
		if q, ok := m.read(&l); ok {
			by[q.UID] = remembered{q, l.UID}
		}
	}
	m.mu.Lock()
	m.by = by
	m.mu.Unlock()
	return nil
}

// read reads a memory Lease: false if it cannot be read, or is of a pod
// outside the namespace watched.
func (m *memory) read(l *coordinationv1.Lease) (contain.Quarantine, bool) {
	q, err := contain.ReadMemory(l.Name, l.Annotations)
	if err != nil {
		m.o.Log.Error("tamper guard: a memory Lease cannot be read; ignored", "lease", l.Name, "err", err)
		return q, false
	}
	return q, m.o.Watch == "" || q.Namespace == m.o.Watch
}

// set remembers q as the memory Lease l says, in memory only.
func (m *memory) set(q contain.Quarantine, l *coordinationv1.Lease) {
	m.mu.Lock()
	m.by[q.UID] = remembered{q, l.UID}
	m.mu.Unlock()
}

func (m *memory) get(uid types.UID) (contain.Quarantine, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.by[uid]
	return r.q, ok
}

func (m *memory) all() []contain.Quarantine {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]contain.Quarantine, 0, len(m.by))
	for _, r := range m.by {
		out = append(out, r.q)
	}
	return out
}

// forget drops the quarantine of uid (released, or its pod deleted), and
// deletes its memory Lease: the one it was read from only, never a newer
// one (the pod contained again right after its release).
func (m *memory) forget(ctx context.Context, uid types.UID) error {
	m.mu.Lock()
	r, ok := m.by[uid]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	err := m.o.Kube.CoordinationV1().Leases(m.o.Namespace).Delete(ctx, MemoryName(uid), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &r.lease}})
	switch {
	case apierrors.IsConflict(err):
		return nil // a newer memory, which the watch brings
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("forgetting the quarantine of pod UID %s: %w", uid, err)
	}
	m.mu.Lock()
	if m.by[uid].lease == r.lease {
		delete(m.by, uid)
	}
	m.mu.Unlock()
	return nil
}
