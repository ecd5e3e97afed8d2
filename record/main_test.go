package record_test

import (
	"context"
	"testing"

	"kir.dev/kir/internal/kubetest"
)

var cluster *kubetest.Cluster

// TestMain runs the tests against a real API server with the records'
// CRD installed as deploy/ ships it.
func TestMain(m *testing.M) {
	kubetest.Main(m, &cluster, kubetest.Options{Setup: func(ctx context.Context, c *kubetest.Cluster) (func(), error) {
		if err := c.InstallCRD(ctx, "../deploy/components/records/crd.yaml"); err != nil {
			return nil, err
		}
		return nil, c.Create(ctx, "../deploy/components/records/approvals.yaml")
	}})
}
