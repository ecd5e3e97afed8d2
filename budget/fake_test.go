package budget_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kir.dev/kir/budget"
)

var configmaps = schema.GroupResource{Resource: "configmaps"}

// failUpdates makes the first n updates of the budget fail with err.
func failUpdates(client *fake.Clientset, n int32, err error) *atomic.Int32 {
	var calls atomic.Int32
	client.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= n {
			return true, nil, err
		}
		return false, nil, nil
	})
	return &calls
}

// A storm of conflicts (another replica winning every time) is waited
// out: the Take lands once it ends, counted once.
func TestConflictsConverge(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	b := &budget.Budget{Client: client, Namespace: "kir", Config: budget.DefaultConfig()}
	mustTake(t, b, budget.Pod, "r0", "a/p0") // creates the object
	calls := failUpdates(client, 40, apierrors.NewConflict(configmaps, budget.ConfigMapName, errors.New("the object has been modified")))
	s := mustTake(t, b, budget.Pod, "r1", "a/p1")
	if s.Used != 2 || calls.Load() != 41 {
		t.Errorf("after 40 conflicts: %d used, %d updates; want 2 and 41", s.Used, calls.Load())
	}
}

// Endless conflicts end in an error saying so; any other error is not
// retried.
func TestConflictsGiveUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       error
		maxCalls  int32
		timeout   time.Duration
		wantError string
	}{
		{"forbidden", apierrors.NewForbidden(configmaps, budget.ConfigMapName, errors.New("no")), 1, time.Minute, "forbidden"},
		{"endless conflicts, deadline", apierrors.NewConflict(configmaps, budget.ConfigMapName, errors.New("modified")), 1 << 30, 200 * time.Millisecond, "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset()
			b := &budget.Budget{Client: client, Namespace: "kir", Config: budget.DefaultConfig()}
			mustTake(t, b, budget.Pod, "r0", "a/p0")
			calls := failUpdates(client, 1<<30, tc.err)
			ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
			defer cancel()
			_, err := b.Take(ctx, budget.Pod, "r1", []string{"a/p1"})
			if err == nil || !strings.Contains(err.Error(), tc.wantError) || !strings.Contains(err.Error(), "taking pod slots for run r1: writing ConfigMap kir/kir-budget") {
				t.Errorf("Take: %v, want %q", err, tc.wantError)
			}
			if calls.Load() > tc.maxCalls {
				t.Errorf("%d updates, want at most %d", calls.Load(), tc.maxCalls)
			}
		})
	}
}
