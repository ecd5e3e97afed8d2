package kubetest

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often Eventually checks its condition.
const pollInterval = 50 * time.Millisecond

// Eventually calls f every 50ms until it returns true, returns an error, or
// timeout passes (or ctx ends). It calls f at once, so a condition that
// already holds costs no wait. f's ctx ends with the timeout.
//
// Tests wait with it instead of sleeping.
func Eventually(ctx context.Context, timeout time.Duration, f func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := f(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
