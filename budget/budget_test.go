package budget_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/budget"
)

// stored is the budget's object as stored now.
func stored(t *testing.T, ns string) *corev1.ConfigMap {
	t.Helper()
	cm, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(t.Context(), budget.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func mustTake(t *testing.T, b *budget.Budget, kind budget.Kind, run string, keys ...string) budget.Slot {
	t.Helper()
	s, err := b.Take(t.Context(), kind, run, keys)
	if err != nil {
		t.Fatalf("Take(%s, %s, %q): %v", kind, run, keys, err)
	}
	return s
}

func mustOver(t *testing.T, b *budget.Budget, kind budget.Kind, run string, keys ...string) *budget.OverBudget {
	t.Helper()
	_, err := b.Take(t.Context(), kind, run, keys)
	var over *budget.OverBudget
	if !errors.As(err, &over) {
		t.Fatalf("Take(%s, %s, %q): %v, want *OverBudget", kind, run, keys, err)
	}
	return over
}

// A resumed run takes what it took again: no slot counted twice, nothing
// written. A new key of the same run counts; the same pod for another run
// is another action and counts too.
func TestRetakeIsIdempotent(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig()}
	mustTake(t, b, budget.Pod, "r1", "a/p1", "a/p2")
	before := stored(t, ns).ResourceVersion
	again := mustTake(t, b, budget.Pod, "r1", "a/p2", "a/p1", "a/p1")
	if diff := cmp.Diff(budget.Slot{Kind: budget.Pod, Run: "r1", Held: []string{"a/p2", "a/p1"}, Used: 2, Limit: 20}, again, cmpSlot); diff != "" {
		t.Errorf("retake (-want +got):\n%s", diff)
	}
	if rv := stored(t, ns).ResourceVersion; rv != before {
		t.Errorf("a retake wrote the object (resourceVersion %s → %s)", before, rv)
	}
	more := mustTake(t, b, budget.Pod, "r1", "a/p1", "a/p3")
	if diff := cmp.Diff(budget.Slot{Kind: budget.Pod, Run: "r1", Taken: []string{"a/p3"}, Held: []string{"a/p1"}, Used: 3, Limit: 20}, more, cmpSlot); diff != "" {
		t.Errorf("take of one more (-want +got):\n%s", diff)
	}
	if other := mustTake(t, b, budget.Pod, "r2", "a/p1"); other.Used != 4 {
		t.Errorf("another run's take of a/p1: %d used, want 4", other.Used)
	}
	cm := stored(t, ns)
	if cm.Labels[action.LabelManagedBy] != action.ManagedByKir || cm.Labels[budget.LabelBudget] != "true" || cm.Annotations["kir.dev/description"] == "" {
		t.Errorf("object not marked as kir's: labels %v, annotations %v", cm.Labels, cm.Annotations)
	}
}

// cmpSlot ignores the time of a Slot.
var cmpSlot = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".At" }, cmp.Ignore())

// Slots free a window after they were taken, by the taker's clock, and
// the expired ones leave the object on the next write.
func TestWindowExpiry(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	clk := newClock()
	t0 := clk.Now()
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.Config{Pods: 2, Window: 10 * time.Minute}, Now: clk.Now}
	mustTake(t, b, budget.Pod, "r1", "a/p1")
	clk.Add(time.Minute)
	mustTake(t, b, budget.Pod, "r2", "a/p2")
	clk.Add(time.Minute)
	over := mustOver(t, b, budget.Pod, "r3", "a/p3")
	if want := t0.Add(10 * time.Minute); !over.NextFree.Equal(want) || over.Used != 2 || over.Limit != 2 || over.Requested != 1 {
		t.Errorf("OverBudget %+v, want 2 of 2 used, 1 requested, next free at %s", over, want)
	}
	if msg := over.Error(); !strings.Contains(msg, "over the pod budget: run r3 needs 1 more pod slot(s), 2 of 2 used in the last 10m0s; enough slots free at 2026-12-06T10:10:00Z") {
		t.Errorf("message %q", msg)
	}
	if two := mustOver(t, b, budget.Pod, "r3", "a/p3", "a/p4"); !two.NextFree.Equal(t0.Add(11 * time.Minute)) {
		t.Errorf("two slots: next free at %s, want %s", two.NextFree, t0.Add(11*time.Minute))
	}
	if never := mustOver(t, b, budget.Pod, "r4", "a/1", "a/2", "a/3"); !never.NextFree.IsZero() || !strings.Contains(never.Error(), "more than the whole budget") {
		t.Errorf("a run larger than the budget: %v (next free %s)", never, never.NextFree)
	}
	clk.Add(8 * time.Minute) // t0+10m: r1's slot frees
	mustTake(t, b, budget.Pod, "r3", "a/p3")
	s, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range s.Pods.Slots {
		keys = append(keys, r.Key)
	}
	if diff := cmp.Diff([]string{"a/p2", "a/p3"}, keys); diff != "" {
		t.Errorf("slots after expiry (-want +got):\n%s", diff)
	}
	if !strings.Contains(stored(t, ns).Data[budget.DataSlots], "a/p2") || strings.Contains(stored(t, ns).Data[budget.DataSlots], "a/p1") {
		t.Errorf("expired slot not pruned from the object:\n%s", stored(t, ns).Data[budget.DataSlots])
	}
}

// A taker whose clock runs an hour ahead cannot hold its slot for an hour
// and a window: the next writer restamps it with its own now.
func TestClockAheadIsBounded(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	clk := newClock()
	ahead := func() time.Time { return clk.Now().Add(time.Hour) }
	cfg := budget.Config{Pods: 2, Window: 10 * time.Minute}
	mustTake(t, &budget.Budget{Client: cluster.Client, Namespace: ns, Config: cfg, Now: ahead}, budget.Pod, "fast", "a/p1")
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: cfg, Now: clk.Now}
	mustTake(t, b, budget.Pod, "r2", "a/p2")
	clk.Add(10 * time.Minute)
	s := mustTake(t, b, budget.Pod, "r3", "a/p3", "a/p4")
	if s.Used != 2 {
		t.Errorf("a window later %d slots used, want 2 (the fast clock's slot expired with the window)", s.Used)
	}
}

// The node limit is the lesser of Nodes and MaxNodeShare of the Ready
// nodes, rounded down.
func TestNodeShare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ready, taken int
		limit        int
	}{{ready: 5, taken: 1, limit: 1}, {ready: 4, taken: 0, limit: 0}, {ready: 100, taken: 2, limit: 2}, {ready: 10, taken: 2, limit: 2}} {
		ns := namespace(t)
		b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig(), ReadyNodes: fixedReady(tc.ready)}
		for i := range tc.taken {
			mustTake(t, b, budget.Node, "r", "node-"+string(rune('a'+i)))
		}
		over := mustOver(t, b, budget.Node, "r2", "node-z")
		if over.Limit != tc.limit || over.Used != tc.taken || over.ReadyNodes != tc.ready {
			t.Errorf("%d Ready: over at %d of %d with %d Ready, want %d of %d", tc.ready, over.Used, over.Limit, over.ReadyNodes, tc.taken, tc.limit)
		}
		if tc.limit < 2 && !strings.Contains(over.Error(), "at most 0.2 of") {
			t.Errorf("%d Ready: message does not explain the share: %s", tc.ready, over)
		}
		if tc.limit == 0 && !over.NextFree.IsZero() {
			t.Errorf("%d Ready: next free %s, want never", tc.ready, over.NextFree)
		}
		if mustTake(t, b, budget.Pod, "r3", "a/p").Used != 1 {
			t.Errorf("pod slots counted with node slots")
		}
	}
}

// Without ReadyNodes the Budget counts the Nodes whose Ready condition is
// True (cordoned or not); NotReady nodes and nodes without the condition
// do not count. The nodes' status is written here, as a kubelet would.
func TestCountReadyNodes(t *testing.T) {
	ctx := t.Context()
	before, err := budget.CountReadyNodes(ctx, cluster.Client)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t)
	for name, ready := range map[string]corev1.ConditionStatus{"a": "True", "b": "True", "c": "False", "d": "Unknown", "e": ""} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}, Spec: corev1.NodeSpec{Unschedulable: name == "b"}}
		node, err := cluster.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ready == "" {
			continue
		}
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
		if _, err := cluster.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := budget.CountReadyNodes(ctx, cluster.Client)
	if err != nil {
		t.Fatal(err)
	}
	if after != before+2 {
		t.Errorf("%d Ready nodes after adding two Ready (one cordoned) and three not to %d, want %d", after, before, before+2)
	}
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.Config{Pods: 1, Nodes: 10, Window: time.Minute, MaxNodeShare: 1}}
	s, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadyNodes != after || s.Nodes.Limit != min(10, after) {
		t.Errorf("Status: %d Ready, node limit %d; want %d, %d", s.ReadyNodes, s.Nodes.Limit, after, min(10, after))
	}
}

// The pause switch: who paused and when, kept by a second pause, cleared
// by resume; the slots stand through it.
func TestPause(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	clk := newClock()
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig(), Now: clk.Now, ReadyNodes: fixedReady(10)}
	if paused, by, _, err := b.Paused(t.Context()); err != nil || paused || by != "" {
		t.Fatalf("Paused before any write: %v %q %v", paused, by, err)
	}
	mustTake(t, b, budget.Pod, "r1", "a/p1")
	if err := b.SetPaused(t.Context(), true, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	since := clk.Now()
	clk.Add(time.Minute)
	if err := b.SetPaused(t.Context(), true, "bob"); err != nil {
		t.Fatal(err)
	}
	// Another replica reads it.
	other := &budget.Budget{Client: separateClient(t), Namespace: ns, Config: budget.DefaultConfig(), Now: clk.Now, ReadyNodes: fixedReady(10)}
	paused, by, at, err := other.Paused(t.Context())
	if err != nil || !paused || by != "alice@example.com" || !at.Equal(since) {
		t.Errorf("Paused: %v %q %s %v, want paused by alice@example.com since %s", paused, by, at, err, since)
	}
	s, err := other.Status(t.Context())
	if err != nil || !s.Paused || s.PausedBy != "alice@example.com" || s.Pods.Used != 1 {
		t.Errorf("Status while paused: %+v %v", s, err)
	}
	// A new run's check refuses while paused, and takes nothing.
	var pe *budget.PausedError
	if _, err := other.TakeUnlessPaused(t.Context(), budget.Pod, "r2", []string{"a/p2"}); !errors.As(err, &pe) || pe.By != "alice@example.com" {
		t.Errorf("TakeUnlessPaused while paused: %v, want a *PausedError naming alice@example.com", err)
	}
	if err := other.SetPaused(t.Context(), false, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.TakeUnlessPaused(t.Context(), budget.Pod, "r2", []string{"a/p2"}); err != nil {
		t.Errorf("TakeUnlessPaused after resume: %v", err)
	}
	if paused, by, _, err := b.Paused(t.Context()); err != nil || paused || by != "" {
		t.Errorf("Paused after resume: %v %q %v", paused, by, err)
	}
	if s, err := b.Status(t.Context()); err != nil || s.Pods.Used != 2 {
		t.Errorf("slots after pause and resume: %+v %v; want r1's and r2's (taken once resumed)", s.Pods, err)
	}
	if err := b.SetPaused(t.Context(), true, ""); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Errorf("pause by nobody: %v, want an error naming the identity", err)
	}
}

// Status: used and limit per kind, and when a slot frees once all are
// used; the limits the taker recorded, not the reader's own.
func TestStatus(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	clk := newClock()
	t0 := clk.Now()
	cfg := budget.Config{Pods: 3, Nodes: 1, Window: 5 * time.Minute, MaxNodeShare: 0.5}
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: cfg, Now: clk.Now, ReadyNodes: fixedReady(4)}
	for i, key := range []string{"a/p1", "a/p2", "a/p3"} {
		mustTake(t, b, budget.Pod, "r", key)
		if i == 0 {
			mustTake(t, b, budget.Node, "r", "n1")
		}
		clk.Add(time.Minute)
	}
	laptop := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig(), Now: clk.Now, ReadyNodes: fixedReady(4)}
	s, err := laptop.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := []any{s.Limits, s.Pods.Used, s.Pods.Limit, s.Pods.NextFree, s.Nodes.Used, s.Nodes.Limit, s.Nodes.NextFree, s.Paused}
	want := []any{cfg, 3, 3, t0.Add(5 * time.Minute), 1, 1, t0.Add(5 * time.Minute), false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
	clk.Add(150 * time.Second) // t0+5m30s: a/p1 and n1 expired
	if s, err = laptop.Status(t.Context()); err != nil || s.Pods.Used != 2 || !s.Pods.NextFree.IsZero() || s.Nodes.Used != 0 {
		t.Errorf("Status a window later: %+v %v", s, err)
	}
}

// An object that does not decode fails the Take closed, naming it and
// the field, and stays as it was.
func TestCorruptObject(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: budget.ConfigMapName}, Data: map[string]string{budget.DataSlots: "[{"}}
	if _, err := cluster.Client.CoreV1().ConfigMaps(ns).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig()}
	_, err := b.Take(t.Context(), budget.Pod, "r", []string{"a/p"})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap "+ns+"/kir-budget: data.slots") {
		t.Errorf("Take on a corrupt object: %v, want an error naming it and data.slots", err)
	}
	if got := stored(t, ns).Data[budget.DataSlots]; got != "[{" {
		t.Errorf("corrupt object changed to %q", got)
	}
}

// A dry run asks the API server and stores nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig(), DryRun: true}
	if s := mustTake(t, b, budget.Pod, "r", "a/p"); s.Used != 1 {
		t.Errorf("dry-run Take: %d used, want 1", s.Used)
	}
	_, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(t.Context(), budget.ConfigMapName, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("after a dry run the object exists: %v", err)
	}
}

// Bad arguments are refused before any request, every problem named.
func TestTakeValidation(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: budget.DefaultConfig()}
	_, err := b.Take(t.Context(), "cluster", "", []string{"ok", "", strings.Repeat("x", budget.MaxKeyLen+1)})
	for _, want := range []string{`budget kind "cluster"`, `run id ""`, "key 1", "key 2", "1 to 320 bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Take with bad arguments: %v, want %q in it", err, want)
		}
	}
	if _, err := b.Take(t.Context(), budget.Pod, "r", nil); err == nil || !strings.Contains(err.Error(), "none given") {
		t.Errorf("Take of no keys: %v", err)
	}
	b.Config.Pods = 0
	if _, err := b.Take(t.Context(), budget.Pod, "r", []string{"a/p"}); err == nil || !strings.Contains(err.Error(), "budget pods: 0") {
		t.Errorf("Take with an invalid Config: %v", err)
	}
	_, err = cluster.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), budget.ConfigMapName, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("refused Takes wrote the object: %v", err)
	}
}

// A node counts once per window, whichever runs cordon it: twenty pods of
// one node are one node of the budget.
func TestNodeCountsOnce(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	cfg := budget.DefaultConfig()
	cfg.Nodes, cfg.MaxNodeShare = 1, 1
	b := &budget.Budget{Client: cluster.Client, Namespace: ns, Config: cfg, ReadyNodes: func(context.Context) (int, error) { return 10, nil }}
	mustTake(t, b, budget.Node, "r1", "node-a")
	if again := mustTake(t, b, budget.Node, "r2", "node-a"); again.Used != 1 || len(again.Taken) != 0 {
		t.Errorf("another run's cordon of node-a: %+v, want it held, 1 used", again)
	}
	if _, err := b.Take(t.Context(), budget.Node, "r3", []string{"node-b"}); !errors.As(err, new(*budget.OverBudget)) {
		t.Errorf("a second node over a budget of one: %v, want OverBudget", err)
	}
}
