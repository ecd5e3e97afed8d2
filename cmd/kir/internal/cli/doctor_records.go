package cli

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/record"
)

// approvalsPolicy is the admission policy (deploy/components/records)
// that makes an approval name the user who wrote it; its binding has the
// same name.
const approvalsPolicy = "kir-response-approvals"

// RecordsCheck says whether kir serve's response records can be kept and
// answered: the CRD is served, and the admission policy that checks who
// approved is installed and bound.
type RecordsCheck struct {
	// CRD: the API server serves responses.kir.dev.
	CRD bool `json:"crd"`
	// Policy and Binding: kir-response-approvals and its binding exist.
	Policy  bool `json:"policy"`
	Binding bool `json:"binding"`
	// Error says what could not be read.
	Error string `json:"error,omitempty"`
}

// checkRecords reads what RecordsCheck says.
func checkRecords(ctx context.Context, c kubernetes.Interface) RecordsCheck {
	var rc RecordsCheck
	list, err := c.Discovery().ServerResourcesForGroupVersion(record.GroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		rc.Error = fmt.Sprintf("discovering %s: %v", record.GroupVersion, err)
		return rc
	default:
		rc.CRD = slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == record.Resource.Resource })
	}
	adm := c.AdmissionregistrationV1()
	_, err = adm.ValidatingAdmissionPolicies().Get(ctx, approvalsPolicy, metav1.GetOptions{})
	if rc.Policy = err == nil; err != nil && !apierrors.IsNotFound(err) {
		rc.Error = fmt.Sprintf("reading ValidatingAdmissionPolicy %s: %v", approvalsPolicy, err)
		return rc
	}
	_, err = adm.ValidatingAdmissionPolicyBindings().Get(ctx, approvalsPolicy, metav1.GetOptions{})
	if rc.Binding = err == nil; err != nil && !apierrors.IsNotFound(err) {
		rc.Error = fmt.Sprintf("reading ValidatingAdmissionPolicyBinding %s: %v", approvalsPolicy, err)
	}
	return rc
}

// printRecords says whether kir serve's records and their approvals
// policy are installed.
func printRecords(p *textPrinter, rc RecordsCheck) {
	p.line("response records (deploy/components/records):")
	if rc.Error != "" {
		p.line("  UNKNOWN  %s", rc.Error)
		return
	}
	line := func(ok bool, what, ifMissing string) {
		if ok {
			p.line("  ok       %s", what)
		} else {
			p.line("  MISSING  %s: %s", what, ifMissing)
		}
	}
	line(rc.CRD, "CustomResourceDefinition responses.kir.dev", "kir serve accepts alerts on its own volume only, and nobody can approve a held run")
	line(rc.Policy, "ValidatingAdmissionPolicy "+approvalsPolicy, "who approved a held run is not checked")
	line(rc.Binding, "ValidatingAdmissionPolicyBinding "+approvalsPolicy, "the approvals policy is not enforced")
}
