package agent

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"kir.dev/kir/action"
)

// TestCurrentReadsKirsRecordAsItIsNow: a policy someone created first
// under kir's name said "keep the sessions" when the agent first read it;
// kir's apply has since replaced that record on the same object, and the
// cut reads the record as it is now. Another object of that name (the
// policy deleted and created again) is not taken for it.
func TestCurrentReadsKirsRecordAsItIsNow(t *testing.T) {
	first := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kir-quarantine-u", Namespace: "app", UID: "p1",
		Labels:      map[string]string{action.LabelManagedBy: action.ManagedByKir},
		Annotations: map[string]string{action.AnnotationSessions: action.SessionsKeep}}}
	now := first.DeepCopy()
	now.Annotations = map[string]string{action.AnnotationIncident: "inc-1"}
	a := &Agent{cfg: Config{Kube: fake.NewClientset(now)}}
	if got := a.current(t.Context(), first); got.Annotations[action.AnnotationSessions] == action.SessionsKeep {
		t.Errorf("the cut would keep the sessions the squatter's first record asked to keep: %v", got.Annotations)
	}
	other := now.DeepCopy()
	other.UID = "p2"
	a = &Agent{cfg: Config{Kube: fake.NewClientset(other)}}
	if got := a.current(t.Context(), first); got != first {
		t.Errorf("another object of the same name was taken for the policy first read: %v", got.UID)
	}
	if a.current(t.Context(), nil) != nil {
		t.Error("no policy became one")
	}
}
