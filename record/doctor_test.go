package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/record"
)

// TestDoctorReportsRecords: kir doctor says the records' CRD and the
// approvals policy are installed, and that the policy's binding is
// missing once it is deleted. Not parallel: it removes the binding the
// approval tests need, and puts it back before they run.
func TestDoctorReportsRecords(t *testing.T) {
	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	records := func() map[string]any {
		t.Helper()
		r := kir.Run(t, "doctor", "-o", "json")
		var d struct {
			Records map[string]any `json:"records"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
			t.Fatalf("kir doctor -o json: %v\n%s%s", err, r.Stdout, r.Stderr)
		}
		return d.Records
	}
	got := records()
	if got["crd"] != true || got["policy"] != true || got["binding"] != true {
		t.Errorf("records as installed: %v, want the CRD, policy and binding", got)
	}
	bindings := cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	b, err := bindings.Get(t.Context(), "kir-response-approvals", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bindings.Delete(t.Context(), b.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	defer restoreBinding(t, b)
	if got := records(); got["crd"] != true || got["policy"] != true || got["binding"] != false {
		t.Errorf("records without the binding: %v, want it missing", got)
	}
}

// restoreBinding creates b again and waits until the API server enforces
// it: a record naming an approver other than its writer is refused.
func restoreBinding(t *testing.T, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	b.ResourceVersion, b.UID = "", ""
	if _, err := cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(t.Context(), b, metav1.CreateOptions{}); err != nil {
		t.Fatalf("putting the binding back: %v", err)
	}
	s, i := newStore(t), 0
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		i++
		probe := sample(fmt.Sprintf("probe-%d", i))
		probe.Spec.Approvals = []record.Approval{{Decision: record.Approve, By: "not-the-writer", At: metav1.Now()}}
		_, err := s.Create(ctx, probe)
		return err != nil && strings.Contains(err.Error(), "kir-response-approvals"), nil
	})
	if err != nil {
		t.Fatalf("the restored binding is not enforced: %v", err)
	}
}
