package action_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
)

func TestFound(t *testing.T) {
	var none *action.Found
	none.AddPod(&corev1.Pod{}) // a nil Found holds nothing and never panics
	if none.Pod("ns", "web") != nil {
		t.Fatal("a nil Found returned a pod")
	}

	f := &action.Found{}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1", Labels: map[string]string{"app": "web"}}}
	f.AddPod(pod)
	pod.Labels["app"] = "changed after it was found"
	got := f.Pod("ns", "web")
	if got == nil || got.UID != "u1" || got.Labels["app"] != "web" {
		t.Fatalf("Pod = %+v; want the pod as it was added", got)
	}
	got.Labels["app"] = "changed by the caller"
	if again := f.Pod("ns", "web"); again.Labels["app"] != "web" {
		t.Errorf("a caller's change reached the found pod: %v", again.Labels)
	}
	if f.Pod("other", "web") != nil || f.Pod("ns", "db") != nil {
		t.Error("Found returned a pod it was not given")
	}
}
