package action

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type testOutput struct {
	Pods  []string `json:"pods"`
	Count int      `json:"count"`
}

// An output decodes to its action's type from wherever it comes: Do's
// value or pointer, or the plain JSON values of a journal.
func TestOutput(t *testing.T) {
	t.Parallel()
	typed := Func[testParams, testOutput]{Name: "x.typed"}
	untyped := Func[testParams, any]{Name: "x.untyped"}
	want := testOutput{Pods: []string{"shop/web"}, Count: 2}
	journal := map[string]any{"pods": []any{"shop/web"}, "count": int64(2), "later": "a field a newer kir added"}
	reg, err := NewRegistry(typed, untyped)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		action string
		out    any
		want   any
	}{
		{"value", "x.typed", want, want},
		{"pointer", "x.typed", &want, want},
		{"journal", "x.typed", journal, want},
		{"nil", "x.typed", nil, nil},
		{"any", "x.untyped", journal, journal},
		{"unknown action", "x.gone", journal, journal},
	} {
		got, err := reg.Output(tt.action, tt.out)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, err := typed.Output(map[string]any{"count": "two"}); err == nil {
		t.Error("an output of the wrong shape decoded without an error")
	}
}
