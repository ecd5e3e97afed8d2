package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/fence"
)

// kir doctor names each fence object's state; the real states come from
// fence.Check (fence's tests run kir doctor against the API server).
func TestDoctorPrintsTheFence(t *testing.T) {
	t.Parallel()
	d := Diagnosis{Fence: fence.Report{
		{Kind: "ValidatingAdmissionPolicy", Name: fence.PolicyQuarantine, State: fence.Installed},
		{Kind: "ValidatingAdmissionPolicyBinding", Name: fence.PolicyKir, State: fence.Missing},
		{Kind: "ValidatingAdmissionPolicy", Name: fence.PolicyPolicies, State: fence.Changed, Detail: "spec.validations differs"},
	}}
	var buf bytes.Buffer
	p := &textPrinter{w: &buf}
	printFence(p, d)
	want := `admission fence (deploy/components/admission):
  ok       ValidatingAdmissionPolicy kir-fence-quarantine
  MISSING  ValidatingAdmissionPolicyBinding kir-fence-kir
  CHANGED  ValidatingAdmissionPolicy kir-fence-policies: spec.validations differs
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	buf.Reset()
	printFence(p, Diagnosis{FenceError: "forbidden"})
	if !strings.Contains(buf.String(), "UNKNOWN  forbidden") {
		t.Errorf("an unreadable fence: %q", buf.String())
	}
}
