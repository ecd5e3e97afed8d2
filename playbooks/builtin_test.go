package playbooks_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/playbooks"
)

// What cannot be undone waits for a person, and comes after the evidence:
// in contain-pod, revoking the ServiceAccounts' tokens is a step of its
// own, after the collection, the node capture and the seal, and after
// the (reversible) rotation of secrets, which needs no approval.
func TestBuiltinApprovals(t *testing.T) {
	t.Parallel()
	lib, err := playbooks.NewLibrary(kirActions(t), playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, name := range lib.Names() {
		e, _ := lib.Get(name)
		for _, s := range e.Playbook.Steps {
			if s.Approval == playbooks.ApprovalRequired {
				got = append(got, name+"/"+s.Name+" "+s.Action)
			}
		}
	}
	want := []string{
		"contain-node/drain contain.drain-node",
		"contain-pod/revoke rotate.pod-credentials",
		"rotate-serviceaccount/revoke rotate.serviceaccount",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("built-in steps that need approval (-want +got):\n%s", diff)
	}

	e, _ := lib.Get("contain-pod")
	pb := e.Playbook
	revoke := pb.StepIndex("revoke")
	for _, before := range []string{"rotate", "collect", "nodeCapture", "seal"} {
		if i := pb.StepIndex(before); i < 0 || i > revoke {
			t.Errorf("contain-pod: step %s (at %d) must come before revoke (at %d)", before, i, revoke)
		}
	}
	rotate := pb.Steps[pb.StepIndex("rotate")]
	if rotate.Approval != "" || rotate.With["credentials"] == nil || pb.Steps[revoke].With["credentials"] == nil {
		t.Errorf("contain-pod: rotate must rotate secrets only, without approval, and revoke the ServiceAccounts")
	}
}
