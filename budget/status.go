package budget

import (
	"context"
	"fmt"
	"time"
)

// MaxByLen bounds the identity SetPaused records.
const MaxByLen = 256

// Status is the budget as read now, for `kir runs list` and doctor.
type Status struct {
	// Limits are those the last taker recorded on the object (what kir
	// serve enforces), or the Budget's Config while none is recorded.
	Limits Config
	// Pods and Nodes are the use of each kind.
	Pods, Nodes Usage
	// ReadyNodes is the count the node limit was computed from.
	ReadyNodes int
	// Paused says whether new runs are held; PausedBy and PausedSince who
	// paused them and when.
	Paused      bool
	PausedBy    string
	PausedSince time.Time
}

// Usage is one kind's use of the budget.
type Usage struct {
	Used, Limit int
	// NextFree is when a slot frees, while all are used; zero while one
	// is free, or when Limit is 0 (nodes: too few Ready).
	NextFree time.Time
	// Slots are the window's records, oldest first.
	Slots []Record
}

// Status reads the budget. It writes nothing (expired slots are left for
// the next Take to prune).
func (b *Budget) Status(ctx context.Context) (Status, error) {
	_, st, err := b.read(ctx)
	if err != nil {
		return Status{}, err
	}
	s := Status{Limits: b.Config, Paused: st.PausedBy != "", PausedBy: st.PausedBy, PausedSince: st.PausedSince}
	if st.Limits != nil {
		s.Limits = *st.Limits
	}
	if err := s.Limits.Validate(); err != nil {
		return Status{}, fmt.Errorf("reading %s: limits: %w", b.name(), err)
	}
	if s.ReadyNodes, err = b.countReady(ctx); err != nil {
		return Status{}, fmt.Errorf("reading the budget: counting Ready nodes: %w", err)
	}
	prune(&st, b.now(), s.Limits.Window)
	for _, u := range []struct {
		kind Kind
		into *Usage
	}{{Pod, &s.Pods}, {Node, &s.Nodes}} {
		live := ofKind(st.Slots, u.kind)
		*u.into = Usage{Used: len(live), Limit: s.Limits.limit(u.kind, s.ReadyNodes), Slots: live}
		if u.into.Limit > 0 && len(live) >= u.into.Limit {
			u.into.NextFree = live[len(live)-u.into.Limit].At.Add(s.Limits.Window)
		}
	}
	return s, nil
}

// Paused says whether every new run is to be held, and since when by whom.
func (b *Budget) Paused(ctx context.Context) (paused bool, by string, since time.Time, err error) {
	_, st, err := b.read(ctx)
	if err != nil {
		return false, "", time.Time{}, err
	}
	return st.PausedBy != "", st.PausedBy, st.PausedSince, nil
}

// SetPaused pauses (every new run is held) or resumes, recording by, the
// identity that asked. Pausing a paused budget keeps who paused it first
// and when; resuming a running one changes nothing.
func (b *Budget) SetPaused(ctx context.Context, paused bool, by string) error {
	verb := map[bool]string{true: "pausing", false: "resuming"}[paused]
	if by == "" || len(by) > MaxByLen {
		return fmt.Errorf("%s runs: the identity %.40q must have 1 to %d bytes", verb, by, MaxByLen)
	}
	err := b.modify(ctx, func(st *state, now time.Time) (bool, error) {
		switch {
		case paused == (st.PausedBy != ""):
			return false, nil
		case paused:
			st.PausedBy, st.PausedSince = by, now
		default:
			st.PausedBy, st.PausedSince = "", time.Time{}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s runs: %w", verb, err)
	}
	return nil
}
