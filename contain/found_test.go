package contain_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
)

// noPodGet is a client on which reading one pod fails: isolation must start
// from the pod the run found instead.
type noPodGet struct{ kubernetes.Interface }

func (c noPodGet) CoreV1() corev1client.CoreV1Interface { return noPodGetCore{c.Interface.CoreV1()} }

type noPodGetCore struct{ corev1client.CoreV1Interface }

func (c noPodGetCore) Pods(ns string) corev1client.PodInterface {
	return noPodGetPods{c.CoreV1Interface.Pods(ns)}
}

type noPodGetPods struct{ corev1client.PodInterface }

func (noPodGetPods) Get(context.Context, string, metav1.GetOptions) (*corev1.Pod, error) {
	return nil, errors.New("injected: the pod was read again")
}

// contain-pod's snapshot reads the pod it records; isolating it starts from
// that read (one API round trip less).
func TestIsolateStartsFromTheFoundPod(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	env := f.env()
	env.Kube = noPodGet{cluster.Client}
	env.Found = &action.Found{}
	env.Found.AddPod(f.Pod(t, f.Pods[0].Name))
	_, out := isolate(t, env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[0].Name)})
	p := f.Pod(t, f.Pods[0].Name)
	if p.Labels[action.LabelQuarantine] != out.Pods[0].Quarantine || out.Pods[0].UID != string(p.UID) {
		t.Errorf("pod %s not isolated from its found read: labels %v, outcome %+v", p.Name, p.Labels, out.Pods[0])
	}
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(t.Context(), out.Pods[0].Policy, metav1.GetOptions{}); err != nil {
		t.Errorf("quarantine policy not stored: %v", err)
	}

	// Without a found pod, the pod is read (and here, that fails).
	env.Found = &action.Found{}
	if _, err := contain.Isolate(t.Context(), env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[0].Name)}); err == nil {
		t.Error("Isolate did not read a pod the run had not found")
	}
}

// A found pod that has since been replaced by another of the same name is
// not labelled: the label write carries the found pod's UID.
func TestIsolateNeverLabelsAPodThatTookTheFoundOnesName(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	stale := f.Pod(t, f.Pods[0].Name)
	stale.UID = types.UID("00000000-0000-0000-0000-000000000001") // the pod that was found, since deleted
	env := f.env()
	env.Found = &action.Found{}
	env.Found.AddPod(stale)
	if _, err := contain.Isolate(t.Context(), env, contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(stale.Name)}); err == nil {
		t.Fatal("Isolate of a replaced pod succeeded")
	}
	if p := f.Pod(t, stale.Name); p.Labels[action.LabelQuarantine] != "" {
		t.Errorf("the pod that took the name was labelled: %v", p.Labels)
	}
	// Nor is it caught by a fallback policy: its label was not refused.
	if pols, err := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace).List(t.Context(), metav1.ListOptions{}); err != nil || len(pols.Items) != 0 {
		t.Errorf("policies after isolating a replaced pod: %v (%v), want none", pols, err)
	}
}

// A quarantine policy someone weakened is put back by containing again:
// kir creates its policy, and applies it over one that exists and differs.
func TestContainAgainRestoresAWeakenedPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	p := contain.IsolateParams{Namespace: action.Namespace(f.Namespace), Name: action.PodName(f.Pods[0].Name)}
	_, out := isolate(t, f.env(), p)
	policies := cluster.Client.NetworkingV1().NetworkPolicies(f.Namespace)
	pol, err := policies.Get(t.Context(), out.Pods[0].Policy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pol.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress} // egress let out
	if _, err := policies.Update(t.Context(), pol, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	res, _ := isolate(t, f.env(), p)
	got, err := policies.Get(t.Context(), out.Pods[0].Policy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	if !slices.Equal(got.Spec.PolicyTypes, want) {
		t.Errorf("policy types after containing again: %v, want %v", got.Spec.PolicyTypes, want)
	}
	if len(res.Writes) == 0 || res.Writes[0].Kind != "NetworkPolicy" || !res.Writes[0].Done {
		t.Errorf("writes: %+v; want the policy applied", res.Writes)
	}
}
