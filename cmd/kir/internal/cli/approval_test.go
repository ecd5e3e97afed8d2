package cli

import (
	"strings"
	"testing"

	"kir.dev/kir/playbooks"
)

// --yes approves as the API identity and the OS user; with no terminal to
// ask (a reader that is not one), nobody decides and the run is held.
func TestTerminalApprovals(t *testing.T) {
	t.Parallel()
	run := &playbooks.Run{ID: "run-1", Steps: []playbooks.StepRun{{Name: "revoke", Action: "rotate.serviceaccount"}}}
	yes := &terminalApprovals{yes: true, by: approver("alice@example.com"), in: strings.NewReader("y\n")}
	d, err := yes.Decide(t.Context(), run, "revoke")
	if err != nil || d.Verdict != playbooks.VerdictApproved || d.Via != viaYes || !strings.HasPrefix(d.By, "alice@example.com (OS user ") {
		t.Errorf("--yes: %+v, %v", d, err)
	}
	// "y" on a pipe is no person at a terminal: it approves nothing.
	noTTY := &terminalApprovals{by: "alice", in: strings.NewReader("y\n")}
	d, err = noTTY.Decide(t.Context(), run, "revoke")
	if err != nil || d.Verdict != playbooks.VerdictPending || d.Reason == "" {
		t.Errorf("no terminal: %+v, %v; want pending with a reason", d, err)
	}
}

// A held run's error has its exit code and names the command that
// approves the step; a denied run's has its own.
func TestRunErrorHeldAndDenied(t *testing.T) {
	t.Parallel()
	held := &playbooks.Run{ID: "run-1", Journaled: true, Status: playbooks.RunHeld, Held: &playbooks.Held{Step: "drain", Reason: "no terminal to ask, and no --yes"}}
	err := runError(held)
	if ExitCode(err) != ExitHeld || !strings.Contains(err.Error(), "kir runs approve run-1 --step drain") {
		t.Errorf("held: exit %d, %v", ExitCode(err), err)
	}
	denied := &playbooks.Run{ID: "run-2", Status: playbooks.RunDenied, Error: "step drain was denied by bob: no"}
	if err := runError(denied); ExitCode(err) != ExitDenied || !strings.Contains(err.Error(), "denied by bob") {
		t.Errorf("denied: exit %d, %v", ExitCode(err), err)
	}
}
