package cli_test

import (
	"fmt"
	"strings"
	"testing"

	"kir.dev/kir/internal/kubetest"
)

// controlPlane is the real control plane (etcd, kube-apiserver,
// controller-manager, scheduler, kwok) of the tests that run kir against a
// cluster, started by the first of them: the tests of commands that need
// none (evidence, playbook validate, rotate of a Vault secret) run without
// it. Its pods serve logs, and report the image IDs they are annotated
// with, for kir collect.
var controlPlane = kubetest.Shared{Options: kubetest.Options{
	ImageIDs: true,
	PodLogs: []kubetest.PodLogs{
		{Containers: []string{"app"}, Log: appLog(), Previous: logTime + " stderr F " + appPreviousLog + "\n"},
		{Log: logTime + " stdout F hello from another container\n"},
	},
}}

func TestMain(m *testing.M) { controlPlane.Main(m) }

// What kwok serves as the log of containers named "app".
const (
	appLogLines    = 100
	appLogLine     = "GET /healthz 200 from 10.0.0.7 user-agent curl/8.5"
	appPreviousLog = "panic: the attacker's payload crashed me"
	logTime        = "2026-01-02T03:04:05.000000000Z"
)

func appLog() string {
	var b strings.Builder
	for i := range appLogLines {
		fmt.Fprintf(&b, "%s stdout F %s #%d\n", logTime, appLogLine, i)
	}
	return b.String()
}

// cluster returns the control plane, starting it for the first test that
// asks.
func cluster(t testing.TB) *kubetest.Cluster {
	t.Helper()
	return controlPlane.Get(t)
}

// newFixture gives a test its own namespace and kwok node, with a
// Deployment "web" of replicas pods there, all Running.
func newFixture(t testing.TB, replicas int32) *kubetest.Fixture {
	t.Helper()
	return cluster(t).NewFixture(t, "cli", replicas)
}

// kir runs kir against no cluster, each run with a state directory of its
// own. Tests against the cluster make their own, with its kubeconfig.
var kir kubetest.Kir
