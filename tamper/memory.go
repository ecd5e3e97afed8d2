package tamper

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
)

// The guard's memory of the quarantines it learned: a Lease per pod in
// kir's namespace (see the package doc for why there), its annotation
// annotationMemory holding the contain.Quarantine as JSON.
const (
	// LabelComponent marks the guard's memory Leases.
	LabelComponent = "app.kubernetes.io/component"
	// ComponentMemory is LabelComponent's value on them.
	ComponentMemory = "kir-tamper-memory"
	// annotationMemory holds the quarantine.
	annotationMemory = "kir.dev/quarantine"
)

// MemoryName is the Lease in which the guard remembers the quarantine of
// the pod with this UID.
func MemoryName(uid types.UID) string { return "kir-tamper-" + string(uid) }

func metaOf(name, ns string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }

// memory is what the guard knows, by pod UID; the Leases are its durable
// copy, read on taking the lead.
type memory struct {
	o  Options
	mu sync.Mutex
	by map[types.UID]contain.Quarantine
}

// load reads every memory Lease.
func (m *memory) load(ctx context.Context) error {
	list, err := m.o.Kube.CoordinationV1().Leases(m.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelComponent + "=" + ComponentMemory})
	if err != nil {
		return fmt.Errorf("reading the tamper guard's memory (Leases in %s): %w", m.o.Namespace, err)
	}
	by := map[types.UID]contain.Quarantine{}
	for _, l := range list.Items {
		var q contain.Quarantine
		if err := json.Unmarshal([]byte(l.Annotations[annotationMemory]), &q); err != nil || q.UID == "" || l.Name != MemoryName(q.UID) {
			m.o.Log.Error("tamper guard: a memory Lease cannot be read; ignored", "lease", l.Name, "err", err)
			continue
		}
		if m.o.Watch == "" || q.Namespace == m.o.Watch {
			by[q.UID] = q
		}
	}
	m.mu.Lock()
	m.by = by
	m.mu.Unlock()
	return nil
}

func (m *memory) get(uid types.UID) (contain.Quarantine, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q, ok := m.by[uid]
	return q, ok
}

func (m *memory) all() []contain.Quarantine {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]contain.Quarantine, 0, len(m.by))
	for _, q := range m.by {
		out = append(out, q)
	}
	return out
}

// learn remembers q, durably first.
func (m *memory) learn(ctx context.Context, q contain.Quarantine) error {
	b, err := json.Marshal(q)
	if err != nil {
		return err
	}
	now := metav1.NewMicroTime(m.o.Now())
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: MemoryName(q.UID), Namespace: m.o.Namespace,
			Labels:      map[string]string{action.LabelManagedBy: action.ManagedByKir, LabelComponent: ComponentMemory},
			Annotations: map[string]string{annotationMemory: string(b), action.AnnotationPod: q.Namespace + "/" + q.Name}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &m.o.Identity, AcquireTime: &now, RenewTime: &now},
	}
	leases := m.o.Kube.CoordinationV1().Leases(m.o.Namespace)
	_, err = leases.Create(ctx, l, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *coordinationv1.Lease
		if cur, err = leases.Get(ctx, l.Name, metav1.GetOptions{}); err == nil {
			cur.Labels, cur.Annotations, cur.Spec = l.Labels, l.Annotations, l.Spec
			_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("remembering the quarantine of pod %s/%s (Lease %s/%s): %w", q.Namespace, q.Name, m.o.Namespace, l.Name, err)
	}
	m.mu.Lock()
	m.by[q.UID] = q
	m.mu.Unlock()
	return nil
}

// forget drops the quarantine of uid (released, or its pod deleted).
func (m *memory) forget(ctx context.Context, uid types.UID) error {
	err := m.o.Kube.CoordinationV1().Leases(m.o.Namespace).Delete(ctx, MemoryName(uid), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("forgetting the quarantine of pod UID %s: %w", uid, err)
	}
	m.mu.Lock()
	delete(m.by, uid)
	m.mu.Unlock()
	return nil
}
