package kubetest

import (
	"errors"
	"strings"
	"testing"
)

// TestRealNodePrerequisitesNameWhatIsMissing: without the node's binaries
// the error says which, and how to build them. Not parallel: it sets the
// environment.
func TestRealNodePrerequisitesNameWhatIsMissing(t *testing.T) {
	t.Setenv("KIR_TEST_BIN", t.TempDir())
	err := RealNodePrerequisites()
	if !errors.Is(err, ErrRealNodeUnavailable) {
		t.Fatalf("RealNodePrerequisites() = %v, want ErrRealNodeUnavailable", err)
	}
	for _, want := range []string{"/kubelet", "/kube-router", "/pause", "make testbin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
}
