package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/playbooks"
)

// journaled is a report's steps as a journal gives them back: outputs are
// plain JSON values, which the printer decodes through the registry.
func journaled(t *testing.T, steps string) []playbooks.StepRun {
	t.Helper()
	var out []playbooks.StepRun
	if err := json.Unmarshal([]byte(steps), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The text report: each output tells its own lines, decoded as its
// action's type; a failed step gets a line of its own unless its output
// shows each item's error, or has no text at all.
func TestPrintText(t *testing.T) {
	t.Parallel()
	r := Report{Run: "run-1", Incident: "inc-1", Actor: "alice", DryRun: "none", Status: playbooks.RunPartial, Steps: journaled(t, `[
		{"name": "snapshot", "action": "collect.snapshot-pod", "status": "succeeded",
		 "output": {"bundle": "/b", "pods": ["shop/web"], "files": ["pods/shop/web/pod.json"]}},
		{"name": "isolate", "action": "contain.isolate-pod", "status": "failed", "error": "one pod failed",
		 "output": {"pods": [
			{"namespace": "shop", "name": "web", "policy": "kir-quarantine-web", "detachedLabels": {"app": "web", "tier": "front"}},
			{"namespace": "shop", "name": "db", "error": "forbidden"}],
		  "nodes": ["n1"], "allowedEgress": ["DNS", "10.0.0.0/8"]}},
		{"name": "cordon", "action": "contain.cordon-node", "status": "succeeded",
		 "output": {"nodes": [{"name": "n1", "cordoned": true, "tainted": true, "changed": true}]}},
		{"name": "rotate", "action": "rotate.pod-credentials", "status": "failed", "error": "vault down",
		 "output": {"secrets": [], "serviceAccounts": [], "left": [], "failed": ["vault://x/y: vault down"]}},
		{"name": "collect", "action": "collect.pod", "status": "failed", "error": "logs: EOF",
		 "output": {"bundle": "/b", "files": 3, "bytes": 2048, "notes": [], "images": []}},
		{"name": "seal", "action": "collect.seal", "status": "failed", "error": "no key"},
		{"name": "later", "action": "collect.custody", "status": "pending"}
	]`)}
	var b strings.Builder
	if err := printText(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `incident inc-1, acting as alice
evidence: recorded shop/web as found, in /b
pod shop/web: isolated: NetworkPolicy kir-quarantine-web denies all ingress and egress except egress to DNS, 10.0.0.0/8
  detached: removed labels app=web,tier=front (recorded in kir.dev/detached-labels)
pod shop/db: FAILED: forbidden
node n1: cordoned and tainted kir.dev/quarantine:NoSchedule
evidence: collected 3 file(s), 2.0 KiB
collect: FAILED: logs: EOF
seal: FAILED: no key
later: not run
PARTIAL: some steps were done and some failed (see above); run the same command again, or kir runs resume run-1, to finish
recorded as run run-1 (kir runs show run-1)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

// A rollback finds what a run rotated in its steps' outputs, whatever the
// playbook: each secret under the rotation id it was written under.
func TestRotations(t *testing.T) {
	t.Parallel()
	run := &playbooks.Run{ID: "run-1", Steps: journaled(t, `[
		{"name": "issue", "action": "rotate.issue-secret", "status": "succeeded", "params": {"rotation": "run-1"},
		 "output": {"ref": "vault://secret/db#password", "store": "vault", "oldVersion": "3", "newVersion": "4", "keys": ["password"]}},
		{"name": "finish", "action": "rotate.finish-secret", "status": "succeeded", "output": {"current": "4"}},
		{"name": "pod", "action": "rotate.pod-credentials", "status": "failed", "params": {"rotation": "run-1"},
		 "output": {"secrets": [{"ref": "aws-sm://api", "store": "aws-sm", "oldVersion": "a", "newVersion": "b"}], "serviceAccounts": [], "left": []}}
	]`)}
	var got []string
	for _, r := range rotations(run) {
		got = append(got, r.ID+" "+r.Ref+" "+r.OldVersion+"→"+r.NewVersion)
	}
	want := []string{"run-1 vault://secret/db#password 3→4", "run-1/aws-sm://api aws-sm://api a→b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rotations (-want +got):\n%s", diff)
	}
}
