// Package nodetest holds the tests that need a real node: kubelet,
// containerd and kube-router on this machine (kubetest.Options.RealNode),
// where packets flow and NetworkPolicies are enforced. One real node runs
// per machine, so these tests are kept in one package.
package nodetest

import (
	"testing"

	"kir.dev/kir/internal/kubetest"
)

// controlPlane starts with the first test that asks: on a machine that
// cannot run the real node, tests skip (fail with CI=true) before that.
var controlPlane = kubetest.Shared{Options: kubetest.Options{RealNode: true}}

func TestMain(m *testing.M) { controlPlane.Main(m) }

// realNode returns the shared cluster and its real node, skipping the test
// (failing it under CI=true) where this machine cannot run one.
func realNode(t *testing.T) (*kubetest.Cluster, *kubetest.Node) {
	t.Helper()
	kubetest.RequireRealNode(t)
	c := controlPlane.Get(t)
	return c, c.Node
}
