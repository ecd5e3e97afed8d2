package budget_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"kir.dev/kir/budget"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*budget.Config)
		want   []string // "" for valid
	}{
		{"default", func(*budget.Config) {}, nil},
		{"no cordons", func(c *budget.Config) { c.Nodes, c.MaxNodeShare = 0, 0 }, nil},
		{"largest", func(c *budget.Config) { c.Pods, c.Nodes, c.Window, c.MaxNodeShare = 1000, 100, 24*time.Hour, 1 }, nil},
		{"no pods", func(c *budget.Config) { c.Pods = 0 }, []string{"budget pods: 0 is not between 1 and 1000 (to hold every run, pause)"}},
		{"too many pods", func(c *budget.Config) { c.Pods = 1001 }, []string{"budget pods: 1001"}},
		{"negative nodes", func(c *budget.Config) { c.Nodes = -1 }, []string{"budget nodes: -1 is not between 0 and 100"}},
		{"short window", func(c *budget.Config) { c.Window = time.Second }, []string{"budget window: 1s is not between 1m0s and 24h0m0s"}},
		{"share over 1", func(c *budget.Config) { c.MaxNodeShare = 20 }, []string{"budget max node share: 20 is not between 0 and 1"}},
		{"share NaN", func(c *budget.Config) { c.MaxNodeShare = math.NaN() }, []string{"budget max node share: NaN"}},
		{"zero value", func(c *budget.Config) { *c = budget.Config{} }, []string{"budget pods", "budget window"}},
		{"all wrong", func(c *budget.Config) {
			*c = budget.Config{Pods: -1, Nodes: 101, Window: -time.Minute, MaxNodeShare: -0.1}
		}, []string{"budget pods", "budget nodes", "budget window", "budget max node share"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := budget.DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate of %+v: valid, want %q", c, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %q, want %q in it", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("Validate: %d problems, want %d: %q", n, len(tc.want), err)
			}
		})
	}
}

// The share is rounded down: never more than the share of Ready nodes.
func TestNodeLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		nodes int
		share float64
		ready int
		want  int
	}{
		{2, 0.2, 5, 1}, {2, 0.2, 4, 0}, {2, 0.2, 0, 0}, {2, 0.2, 10, 2}, {2, 0.2, 1000, 2},
		{100, 0.29, 100, 29}, {100, 0.3, 10, 3}, {100, 1, 7, 7}, {0, 1, 7, 0}, {5, 0, 7, 0},
	} {
		if got := (budget.Config{Nodes: tc.nodes, MaxNodeShare: tc.share}).NodeLimit(tc.ready); got != tc.want {
			t.Errorf("Nodes %d, share %g, %d Ready: limit %d, want %d", tc.nodes, tc.share, tc.ready, got, tc.want)
		}
	}
}
