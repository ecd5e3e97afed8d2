package budget

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The fullest object the largest Config allows, with the longest keys and
// run ids, stays under the API server's 1 MiB.
func TestLargestObjectFits(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)
	st := state{PausedBy: strings.Repeat("u", MaxByLen), PausedSince: now}
	largest := Config{Pods: MaxPods, Nodes: MaxNodes, Window: MaxWindow, MaxNodeShare: 1}
	st.Limits = &largest
	for i := range MaxSlots {
		key := fmt.Sprintf("%04d", i) + strings.Repeat("k", MaxKeyLen-4)
		st.Slots = append(st.Slots, Record{Kind: Node, Key: key, Run: strings.Repeat("r", MaxRunLen), At: now})
	}
	data, err := encodeData(st)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for k, v := range data {
		size += len(k) + len(v)
	}
	if size > 900<<10 {
		t.Errorf("the fullest object's data has %d bytes, over 900 KiB (the limit is 1 MiB)", size)
	}
	t.Logf("fullest object: %d bytes of data", size)
	back, err := decode(data)
	if err != nil || len(back.Slots) != MaxSlots || *back.Limits != largest {
		t.Errorf("decoding it: %d slots, limits %+v, %v", len(back.Slots), back.Limits, err)
	}
}
