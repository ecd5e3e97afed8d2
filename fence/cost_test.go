package fence

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
)

// perCallLimit is the API server's cost limit of one CEL expression
// (k8s.io/apiserver/pkg/apis/cel.PerCallLimit).
const perCallLimit = 1_000_000

// TestCostOfHostilePods measures, with cel-go's runtime cost (the API
// server's unit), the fence's heaviest expressions on the hostile pods:
// 2,100 labels of the longest keys and values, and 262,000 bytes of
// annotations. They must stay far below the limit, or the API server
// would refuse kir (failurePolicy Fail) instead of answering. The real
// API server's answer on such pods is TestHostilePodsGetADefiniteAnswer's.
func TestCostOfHostilePods(t *testing.T) {
	t.Parallel()
	labels := map[string]any{}
	for i := range 2100 {
		// 253-character prefix, 63-character name and value.
		prefix := strings.Repeat("p", 240) + fmt.Sprintf(".x%010d", i)
		labels[prefix+"/"+strings.Repeat("n", 63)] = strings.Repeat("v", 63)
	}
	withKir := map[string]any{labelQuarantine: "uid"}
	for k, v := range labels {
		withKir[k] = v
	}
	annos := map[string]any{}
	for i := range 8 {
		annos[fmt.Sprintf("a%d", i)] = strings.Repeat("x", 32750)
	}
	vars := map[string]any{
		"oldLabels": labels, "newLabels": withKir, "oldAnnotations": annos, "newAnnotations": annos,
		"detachedNow": "", "detachedBefore": "", "kir": false, "responder": false,
	}
	meta := func(l, a map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"labels": l, "annotations": a}}
	}
	act := map[string]any{
		"variables": vars,
		"request":   map[string]any{"operation": "UPDATE", "resource": map[string]any{"resource": "pods"}, "userInfo": map[string]any{"username": "x"}},
		"object":    meta(withKir, annos), "oldObject": meta(labels, annos),
	}
	env, err := cel.NewEnv(cel.OptionalTypes(), ext.Strings(),
		cel.Variable("variables", cel.DynType), cel.Variable("request", cel.DynType),
		cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		expr string
		want bool
	}{
		"pod labels (kir adds its label)":      {celPodLabels, true},
		"pod annotations (unchanged)":          {celKirAnnotationsOnly, true},
		"quarantine label (added, not by kir)": {celQuarantineKept, false},
	} {
		expr := tc.expr
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", name, iss.Err())
		}
		prg, err := env.Program(ast, cel.CostTracking(nil), cel.CostLimit(perCallLimit))
		if err != nil {
			t.Fatal(err)
		}
		out, det, err := prg.Eval(act)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cost := *det.ActualCost()
		t.Logf("%s: %v, cost %d (%.1f%% of the limit)", name, out, cost, 100*float64(cost)/perCallLimit)
		if out.Value() != tc.want {
			t.Errorf("%s = %v, want %v", name, out, tc.want)
		}
		if cost > perCallLimit/4 {
			t.Errorf("%s costs %d, over a quarter of the limit %d", name, cost, perCallLimit)
		}
	}
}
