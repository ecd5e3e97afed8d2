package budget

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults a responder would choose: a storm of one rule on every pod of
// a DaemonSet is contained 20 pods at a time, and kir never cordons more
// than two nodes, nor a fifth of the Ready ones, in ten minutes, without a
// person approving.
const (
	DefaultPods         = 20
	DefaultNodes        = 2
	DefaultWindow       = 10 * time.Minute
	DefaultMaxNodeShare = 0.2
)

// Bounds of a Config: they keep the object under the API server's 1 MiB
// (MaxSlots records of at most MaxKeyLen + MaxRunLen bytes, see doc.go).
const (
	MaxPods   = 1000
	MaxNodes  = 100
	MinWindow = time.Minute
	MaxWindow = 24 * time.Hour
	// MaxSlots is the most records the object can hold.
	MaxSlots = MaxPods + MaxNodes
)

// Config is the budget's limits.
type Config struct {
	// Pods is how many pods kir contains per Window (at least 1: a
	// budget that admits nothing is Pause).
	Pods int
	// Nodes is how many nodes kir cordons per Window; 0: none unasked.
	Nodes int
	// Window is the span the counts are over: a slot frees Window after
	// it was taken.
	Window time.Duration
	// MaxNodeShare caps the nodes cordoned per Window at this share of
	// the Ready nodes, rounded down: 0.2 of 5 Ready nodes is 1, of 4 is
	// 0 (a cordon would exceed the share). Between 0 and 1.
	MaxNodeShare float64
}

// DefaultConfig is the Config of the Default* values.
func DefaultConfig() Config {
	return Config{Pods: DefaultPods, Nodes: DefaultNodes, Window: DefaultWindow, MaxNodeShare: DefaultMaxNodeShare}
}

// Validate returns every problem of c at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Pods < 1 || c.Pods > MaxPods {
		errs = append(errs, fmt.Errorf("budget pods: %d is not between 1 and %d (to hold every run, pause)", c.Pods, MaxPods))
	}
	if c.Nodes < 0 || c.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("budget nodes: %d is not between 0 and %d", c.Nodes, MaxNodes))
	}
	if c.Window < MinWindow || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("budget window: %s is not between %s and %s", c.Window, MinWindow, MaxWindow))
	}
	if math.IsNaN(c.MaxNodeShare) || c.MaxNodeShare < 0 || c.MaxNodeShare > 1 {
		errs = append(errs, fmt.Errorf("budget max node share: %v is not between 0 and 1 (0.2 is a fifth of the Ready nodes)", c.MaxNodeShare))
	}
	return errors.Join(errs...)
}

// NodeLimit is how many nodes may be cordoned per window with ready Ready
// nodes: Nodes, or MaxNodeShare of ready rounded down if fewer. The
// epsilon keeps a product that floating point puts just under an integer
// (0.29 × 100 = 28.999…) on it.
func (c Config) NodeLimit(ready int) int {
	share := int(math.Floor(c.MaxNodeShare*float64(ready) + 1e-9))
	return max(0, min(c.Nodes, share))
}

// limit is the limit of kind with ready Ready nodes.
func (c Config) limit(kind Kind, ready int) int {
	if kind == Pod {
		return c.Pods
	}
	return c.NodeLimit(ready)
}
