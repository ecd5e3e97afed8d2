package budget

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

// Names on the budget's ConfigMap.
const (
	// ConfigMapName is the budget's one object, in kir's namespace.
	ConfigMapName = "kir-budget"
	// FieldManager is the manager of every write to it.
	FieldManager = "kir-budget"
	// LabelBudget marks it.
	LabelBudget = "kir.dev/budget"

	// Its data keys: the slots of the window (JSON, one record a line),
	// the limits the last taker enforced (JSON), and the pause switch.
	DataSlots       = "slots"
	DataLimits      = "limits"
	DataPausedBy    = "paused-by"
	DataPausedSince = "paused-since"

	description = "kir's budget: the pods contained and nodes cordoned in the last window (slots), " +
		"the limits (limits), and the pause switch (paused-by, paused-since: every new run is held). " +
		"Written by kir with compare-and-swap; deleting it resets the counts."
)

// Record is one slot in the object: key (a pod's namespace/name, a node's
// name) counted for run at At, by the taker's clock.
type Record struct {
	Kind Kind      `json:"kind"`
	Key  string    `json:"key"`
	Run  string    `json:"run"`
	At   time.Time `json:"at"`
}

// limitsRecord is Config as recorded, the window readable.
type limitsRecord struct {
	Pods         int     `json:"pods"`
	Nodes        int     `json:"nodes"`
	Window       string  `json:"window"`
	MaxNodeShare float64 `json:"maxNodeShare"`
}

// state is the object's content.
type state struct {
	Slots       []Record
	Limits      *Config
	PausedBy    string
	PausedSince time.Time
}

// maxAttempts bounds the reads and writes of one change: each conflict
// means another writer succeeded, so fifty writers at once converge well
// within it.
const maxAttempts = 200

// modify reads the object (nil if missing), lets change alter its state
// with the time read, and writes it back conditionally on the
// resourceVersion it read (create if missing), again from the read on a
// conflict. change returns false to write nothing; it may run many times.
func (b *Budget) modify(ctx context.Context, change func(st *state, now time.Time) (bool, error)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.modifyLocked(ctx, change)
}

// modifyLocked is modify, b.mu held.
func (b *Budget) modifyLocked(ctx context.Context, change func(st *state, now time.Time) (bool, error)) error {
	cms := b.Client.CoreV1().ConfigMaps(b.namespace())
	opts := metav1.UpdateOptions{FieldManager: FieldManager}
	copts := metav1.CreateOptions{FieldManager: FieldManager}
	if b.DryRun {
		opts.DryRun, copts.DryRun = []string{metav1.DryRunAll}, []string{metav1.DryRunAll}
	}
	for attempt := range maxAttempts {
		cm, st, err := b.read(ctx)
		if err != nil {
			return err
		}
		write, err := change(&st, b.now())
		if err != nil || !write {
			return err
		}
		next, err := b.encode(cm, st)
		if err != nil {
			return err
		}
		if cm == nil {
			_, err = cms.Create(ctx, next, copts)
		} else {
			_, err = cms.Update(ctx, next, opts)
		}
		switch {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) && !apierrors.IsNotFound(err):
			return fmt.Errorf("writing %s: %w", b.name(), err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("writing %s: %w", b.name(), err)
		}
	}
	return fmt.Errorf("writing %s: %d conflicting writes in a row, giving up", b.name(), maxAttempts)
}

// backoff waits a random time up to 2ms doubled per attempt, at most 100ms:
// writers that lost a conflict spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	ceiling := min(2*time.Millisecond<<min(attempt, 6), 100*time.Millisecond)
	t := time.NewTimer(rand.N(ceiling) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// read returns the object (nil if there is none) and its state. An object
// that does not decode is an error, never an empty budget: the callers
// hold the run (fail closed) until a person repairs or deletes it.
func (b *Budget) read(ctx context.Context) (*corev1.ConfigMap, state, error) {
	cm, err := b.Client.CoreV1().ConfigMaps(b.namespace()).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, state{}, nil
	}
	if err != nil {
		return nil, state{}, fmt.Errorf("reading %s: %w", b.name(), err)
	}
	st, err := decode(cm.Data)
	if err != nil {
		return nil, state{}, fmt.Errorf("reading %s: %w (repair or delete it: deleting resets the counts)", b.name(), err)
	}
	return cm, st, nil
}

func decode(data map[string]string) (state, error) {
	var st state
	if s := data[DataSlots]; s != "" {
		if err := json.Unmarshal([]byte(s), &st.Slots); err != nil {
			return st, fmt.Errorf("data.%s: %w", DataSlots, err)
		}
	}
	if s := data[DataLimits]; s != "" {
		var l limitsRecord
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			return st, fmt.Errorf("data.%s: %w", DataLimits, err)
		}
		w, err := time.ParseDuration(l.Window)
		if err != nil {
			return st, fmt.Errorf("data.%s: window: %w", DataLimits, err)
		}
		st.Limits = &Config{Pods: l.Pods, Nodes: l.Nodes, Window: w, MaxNodeShare: l.MaxNodeShare}
	}
	st.PausedBy = data[DataPausedBy]
	if s := data[DataPausedSince]; s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return st, fmt.Errorf("data.%s: %w", DataPausedSince, err)
		}
		st.PausedSince = t
	}
	return st, nil
}

// encode returns cm (a new object if nil) holding st.
func (b *Budget) encode(cm *corev1.ConfigMap, st state) (*corev1.ConfigMap, error) {
	if cm == nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: b.namespace()}}
	} else {
		cm = cm.DeepCopy()
	}
	cm.Labels = merge(cm.Labels, map[string]string{action.LabelManagedBy: action.ManagedByKir, LabelBudget: "true"})
	cm.Annotations = merge(cm.Annotations, map[string]string{action.AnnotationPrefix + "description": description})
	data, err := encodeData(st)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", b.name(), err)
	}
	cm.Data = data
	return cm, nil
}

func encodeData(st state) (map[string]string, error) {
	var slots bytes.Buffer
	slots.WriteString("[")
	for i, r := range st.Slots {
		line, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			slots.WriteString(",")
		}
		slots.WriteString("\n")
		slots.Write(line)
	}
	slots.WriteString("\n]\n")
	data := map[string]string{DataSlots: slots.String()}
	if l := st.Limits; l != nil {
		b, err := json.Marshal(limitsRecord{Pods: l.Pods, Nodes: l.Nodes, Window: l.Window.String(), MaxNodeShare: l.MaxNodeShare})
		if err != nil {
			return nil, err
		}
		data[DataLimits] = string(b)
	}
	if st.PausedBy != "" {
		data[DataPausedBy] = st.PausedBy
		data[DataPausedSince] = st.PausedSince.UTC().Format(time.RFC3339Nano)
	}
	return data, nil
}

func merge(into, from map[string]string) map[string]string {
	if into == nil {
		into = map[string]string{}
	}
	for k, v := range from {
		into[k] = v
	}
	return into
}
