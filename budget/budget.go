package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
)

// Kind is what a slot counts.
type Kind string

const (
	// Pod slots count pods contained; their keys are namespace/name.
	Pod Kind = "pod"
	// Node slots count nodes cordoned; their keys are node names.
	Node Kind = "node"
)

// Bounds of Take's arguments, which bound the object's size.
const (
	MaxKeyLen = 320 // a namespace (63), "/" and a pod name (253)
	MaxRunLen = 128
)

// Budget is the installation's budget, in the ConfigMap ConfigMapName of
// Namespace. Every replica and every kir on a laptop builds its own Budget
// over the same object. Share one *Budget within a process: its changes go
// one at a time, so that only replicas contend (a conflict costs a read
// and a write again, and fifty runs of one replica racing each other would
// cost hundreds). Do not copy a Budget once used.
type Budget struct {
	Client kubernetes.Interface
	// Namespace is kir's namespace; "" means action.DefaultKirNamespace.
	Namespace string
	// Config is the limits Take enforces.
	Config Config
	// ReadyNodes counts the cluster's Ready nodes for the node share; nil
	// lists the Nodes (RBAC: nodes list, see ClusterRules).
	ReadyNodes func(ctx context.Context) (int, error)
	// Now is the taker's clock, which stamps slots and expires them; nil
	// means time.Now.
	Now func() time.Time
	// DryRun sends every write with dryRun=All: the API server checks it
	// and stores nothing.
	DryRun bool

	// mu serialises this value's changes.
	mu sync.Mutex
	// queue holds the Takes waiting for the next write: concurrent Takes
	// share one read and one write (commit).
	qmu   sync.Mutex
	queue []*takeReq
}

// Slot is what Take counted for a run.
type Slot struct {
	Kind Kind
	Run  string
	// Taken are the keys counted by this call; Held those the run had
	// already taken within the window (a resumed run), not counted again.
	Taken, Held []string
	// Used is the kind's slots in the window, this call's included, of
	// Limit.
	Used, Limit int
	// At is the time of the call that returned it (the taker's clock).
	At time.Time
}

// OverBudget is Take's error when the run's slots do not fit: nothing was
// taken. The caller holds the run (pods) or its cordon step (nodes).
type OverBudget struct {
	Kind Kind
	Run  string
	// Requested is how many slots the run needed beyond those it held;
	// Used of Limit are taken within Window.
	Requested, Used, Limit int
	Window                 time.Duration
	// Config and ReadyNodes (nodes only) explain Limit.
	Config     Config
	ReadyNodes int
	// NextFree is when enough slots will have expired for the run to fit,
	// if no other run takes them; zero if Requested exceeds Limit: the run
	// never fits and waits for a person.
	NextFree time.Time
}

func (e *OverBudget) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "over the %s budget: run %s needs %d more %s slot(s), %d of %d used in the last %s", e.Kind, e.Run, e.Requested, e.Kind, e.Used, e.Limit, e.Window)
	if e.Kind == Node && e.Limit < e.Config.Nodes {
		fmt.Fprintf(&b, " (%d nodes per window, but at most %g of %d Ready nodes)", e.Config.Nodes, e.Config.MaxNodeShare, e.ReadyNodes)
	}
	if e.NextFree.IsZero() {
		b.WriteString("; it needs more than the whole budget: only a person can let it run")
	} else {
		fmt.Fprintf(&b, "; enough slots free at %s", e.NextFree.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Take counts keys (pods or nodes, per kind) for run, all or none: the
// keys run already holds within the window are not counted again (a
// resumed run takes what it took again and succeeds), nor are nodes any
// run took within the window (a node counts once), the others must fit
// in the limit, or Take returns an *OverBudget and counts nothing. The
// count is a compare-and-swap on the object's resourceVersion: of
// concurrent Takes, on any replicas, at most the limit succeed.
func (b *Budget) Take(ctx context.Context, kind Kind, run string, keys []string) (Slot, error) {
	return b.take1(ctx, kind, run, keys, false)
}

// PausedError is TakeUnlessPaused's answer while kir is paused.
type PausedError struct {
	By    string
	Since time.Time
}

func (e *PausedError) Error() string {
	return fmt.Sprintf("kir is paused (by %s since %s): kir runs unpause", e.By, e.Since.UTC().Format(time.RFC3339))
}

// TakeUnlessPaused is Take that first checks the pause switch, in the same
// read: while kir is paused it takes nothing and returns a *PausedError.
// A new run's check costs one shared write (see Take), not a read more.
func (b *Budget) TakeUnlessPaused(ctx context.Context, kind Kind, run string, keys []string) (Slot, error) {
	return b.take1(ctx, kind, run, keys, true)
}

func (b *Budget) take1(ctx context.Context, kind Kind, run string, keys []string, unlessPaused bool) (Slot, error) {
	if err := b.Config.Validate(); err != nil {
		return Slot{}, err
	}
	keys, err := checkRequest(kind, run, keys)
	if err != nil {
		return Slot{}, err
	}
	ready := 0
	if kind == Node {
		if ready, err = b.countReady(ctx); err != nil {
			return Slot{}, fmt.Errorf("taking node slots for run %s: counting Ready nodes: %w", run, err)
		}
	}
	req := &takeReq{kind: kind, run: run, keys: keys, ready: ready, unlessPaused: unlessPaused, done: make(chan takeRes, 1)}
	b.qmu.Lock()
	b.queue = append(b.queue, req)
	b.qmu.Unlock()
	// Whoever holds mu next writes every Take queued by then, this one
	// included: a storm of Takes is a few writes, not one each.
	b.mu.Lock()
	b.qmu.Lock()
	batch := b.queue
	b.queue = nil
	b.qmu.Unlock()
	if len(batch) > 0 {
		b.commit(ctx, batch)
	}
	b.mu.Unlock()
	res := <-req.done
	if over := (*OverBudget)(nil); errors.As(res.err, &over) {
		return Slot{}, over
	}
	if paused := (*PausedError)(nil); errors.As(res.err, &paused) {
		return Slot{}, paused
	}
	if res.err != nil {
		return Slot{}, fmt.Errorf("taking %s slots for run %s: %w", kind, run, res.err)
	}
	return res.slot, nil
}

// takeReq is a Take waiting for its write, and takeRes its answer.
type takeReq struct {
	kind         Kind
	run          string
	keys         []string
	ready        int
	unlessPaused bool
	done         chan takeRes
}

type takeRes struct {
	slot Slot
	err  error
}

// commit takes the slots of a batch of Takes in one compare-and-swap
// write, each all or none in the order they came, and answers each. A
// write that fails fails them all.
func (b *Budget) commit(ctx context.Context, batch []*takeReq) {
	res := make([]takeRes, len(batch))
	err := b.modifyLocked(ctx, func(st *state, now time.Time) (bool, error) {
		write := false
		for i, r := range batch {
			if r.unlessPaused && st.PausedBy != "" {
				res[i] = takeRes{err: &PausedError{By: st.PausedBy, Since: st.PausedSince}}
				continue
			}
			s, w, err := b.take(st, now, r.kind, r.run, r.keys, r.ready)
			res[i] = takeRes{slot: s, err: err}
			write = write || w
		}
		return write, nil
	})
	for i, r := range batch {
		if err != nil {
			res[i] = takeRes{err: err}
		}
		r.done <- res[i]
	}
}

// take changes st to hold run's slots, and says whether to write it.
func (b *Budget) take(st *state, now time.Time, kind Kind, run string, keys []string, ready int) (Slot, bool, error) {
	prune(st, now, b.Config.Window)
	limit := b.Config.limit(kind, ready)
	slot := Slot{Kind: kind, Run: run, Limit: limit, At: now}
	live := ofKind(st.Slots, kind)
	for _, k := range keys {
		// A key this run took within the window is not counted again; nor
		// is a node another run took: the budget counts nodes cordoned,
		// and twenty pods of one node are one node. (The same pod
		// contained by another run is another containment, and counts.)
		if slices.ContainsFunc(live, func(r Record) bool { return r.Key == k && (r.Run == run || kind == Node) }) {
			slot.Held = append(slot.Held, k)
		} else {
			slot.Taken = append(slot.Taken, k)
		}
	}
	slot.Used = len(live) + len(slot.Taken)
	if len(slot.Taken) == 0 {
		return slot, false, nil
	}
	if slot.Used > limit {
		over := &OverBudget{
			Kind: kind, Run: run, Requested: len(slot.Taken), Used: len(live), Limit: limit,
			Window: b.Config.Window, Config: b.Config, ReadyNodes: ready,
		}
		if len(slot.Taken) <= limit {
			// The oldest slots expire first: the run fits once
			// Used+Requested-Limit of them have.
			over.NextFree = live[slot.Used-limit-1].At.Add(b.Config.Window)
		}
		return Slot{}, false, over
	}
	for _, k := range slot.Taken {
		st.Slots = append(st.Slots, Record{Kind: kind, Key: k, Run: run, At: now})
	}
	st.Limits = &b.Config
	return slot, true, nil
}

// prune drops the slots that expired by now, and stamps now on those
// stamped later (a taker's clock ahead of this one): a clock that is off
// holds its slots no longer than a window of the next writer's clock.
func prune(st *state, now time.Time, window time.Duration) {
	st.Slots = slices.DeleteFunc(st.Slots, func(r Record) bool { return !now.Before(r.At.Add(window)) })
	for i := range st.Slots {
		if st.Slots[i].At.After(now) {
			st.Slots[i].At = now
		}
	}
}

// ofKind returns the records of kind, oldest first.
func ofKind(records []Record, kind Kind) []Record {
	var out []Record
	for _, r := range records {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int { return a.At.Compare(b.At) })
	return out
}

// checkRequest validates Take's arguments and returns keys without
// duplicates (a run's pods share nodes).
func checkRequest(kind Kind, run string, keys []string) ([]string, error) {
	var errs []error
	if kind != Pod && kind != Node {
		errs = append(errs, fmt.Errorf("budget kind %q is neither %q nor %q", kind, Pod, Node))
	}
	if run == "" || len(run) > MaxRunLen {
		errs = append(errs, fmt.Errorf("budget run id %q: must have 1 to %d bytes", run, MaxRunLen))
	}
	if len(keys) == 0 {
		errs = append(errs, fmt.Errorf("budget %s keys for run %s: none given", kind, run))
	}
	var out []string
	for i, k := range keys {
		if k == "" || len(k) > MaxKeyLen {
			errs = append(errs, fmt.Errorf("budget %s key %d (%.40q): must have 1 to %d bytes", kind, i, k, MaxKeyLen))
		} else if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, errors.Join(errs...)
}

// countReady counts the Ready nodes, with ReadyNodes if set.
func (b *Budget) countReady(ctx context.Context) (int, error) {
	if b.ReadyNodes != nil {
		return b.ReadyNodes(ctx)
	}
	return CountReadyNodes(ctx, b.Client)
}

// CountReadyNodes counts the nodes whose Ready condition is True (a
// cordoned node is still Ready), from the API server's cache.
func CountReadyNodes(ctx context.Context, client kubernetes.Interface) (int, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return 0, fmt.Errorf("listing nodes: %w", err)
	}
	n := 0
	for _, node := range list.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}

func (b *Budget) now() time.Time {
	if b.Now == nil {
		return time.Now().UTC()
	}
	return b.Now().UTC()
}

func (b *Budget) namespace() string {
	if b.Namespace == "" {
		return action.DefaultKirNamespace
	}
	return b.Namespace
}

// name is the object's namespace/name, for errors.
func (b *Budget) name() string { return "ConfigMap " + b.namespace() + "/" + ConfigMapName }
