package guard_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"kir.dev/kir/action"
	"kir.dev/kir/guard"
	"kir.dev/kir/playbooks"
)

func pod(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, Spec: corev1.PodSpec{NodeName: node}}
}

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func protect(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kir", Name: guard.ConfigMap}, Data: data}
}

// A named string type, as typed parameters may bind to.
type namespace string

// TestCheck: the guard's rules over the fake clientset (the logic; the
// real control plane's proofs are serve's TestGuardRefusesProtectedTargets
// and the command line's guard_test.go).
func TestCheck(t *testing.T) {
	t.Parallel()
	list := protect(map[string]string{
		guard.KeyNamespaces:     "# the money\npayments\n\n",
		guard.KeyPodSelectors:   "app=sidekick\n",
		guard.KeyFalcoNamespace: "falco-system",
	})
	world := []runtime.Object{
		pod("shop", "web-1", "n1", map[string]string{"app": "web"}),
		pod("shop", "sidekick-1", "n1", map[string]string{"app": "sidekick"}),
		pod("kir", "kir-serve-1", "n2", nil),
		pod("kube-system", "kube-apiserver-cp", "cp", map[string]string{"tier": "control-plane"}),
		node("n1", nil), node("n2", nil), node("cp", nil), node("master", map[string]string{guard.LabelControlPlane: ""}),
	}
	containment := &playbooks.Playbook{Name: "contain-pod", Category: playbooks.CategoryContainment}
	tests := []struct {
		name    string
		objs    []runtime.Object
		pb      *playbooks.Playbook
		params  map[string]any
		refused []string // the rules, in order; nil: allowed
	}{
		{"plain pod", []runtime.Object{list}, nil, map[string]any{"namespace": "shop", "name": "web-1"}, nil},
		{"kube-system", nil, nil, map[string]any{"namespace": "kube-system", "name": "coredns-1"}, []string{guard.RuleKubeSystem}},
		{"kir's namespace", nil, nil, map[string]any{"namespace": "kir", "selector": "app=x"}, []string{guard.RuleKir}},
		{"falco by default", nil, nil, map[string]any{"namespace": "falco", "name": "falco-x"}, []string{guard.RuleFalco}},
		{"falco moved", []runtime.Object{list}, nil, map[string]any{"namespace": "falco-system", "name": "falco-x"}, []string{guard.RuleFalco}},
		{"listed namespace", []runtime.Object{list}, nil, map[string]any{"namespace": namespace("payments"), "name": "api"}, []string{guard.RuleNamespace}},
		{"listed pod by name", []runtime.Object{list}, nil, map[string]any{"namespace": "shop", "name": "sidekick-1"}, []string{guard.RulePodSelector}},
		{"selector matching a listed pod", []runtime.Object{list}, nil, map[string]any{"namespace": "shop", "selector": "app in (web, sidekick)"}, []string{guard.RulePodSelector}},
		{"selector matching none listed", []runtime.Object{list}, nil, map[string]any{"namespace": "shop", "selector": "app=web"}, nil},
		{"node of kir", nil, nil, map[string]any{"node": "n2"}, []string{guard.RuleNodeOfKir}},
		{"node of the control plane's pods", nil, nil, map[string]any{"nodes": []any{"n1", "cp"}}, []string{guard.RuleNodeOfKir}},
		{"control-plane node", nil, nil, map[string]any{"node": "master"}, []string{guard.RuleControlPlane}},
		{"plain node", nil, nil, map[string]any{"node": "n1"}, nil},
		{"release is never refused", nil, &playbooks.Playbook{Name: "release-pod", Category: playbooks.CategoryRelease}, map[string]any{"namespace": "kube-system", "name": "x"}, nil},
		{"bad selector refuses all", []runtime.Object{protect(map[string]string{guard.KeyPodSelectors: "app in (web"})}, nil, map[string]any{"namespace": "shop", "name": "web-1"}, []string{guard.RuleUnreadable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := fake.NewClientset(append(world[:len(world):len(world)], tt.objs...)...)
			pb := tt.pb
			if pb == nil {
				pb = containment
			}
			g := &guard.Guard{Namespace: "kir"}
			_, err := g.Check(t.Context(), action.Env{Kube: kube}, pb, tt.params)
			var got []string
			var re *guard.RefusedError
			if errors.As(err, &re) {
				for _, r := range re.Refusals {
					got = append(got, r.Rule)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.refused, got); diff != "" {
				t.Errorf("refusals (-want +got):\n%s\n%v", diff, err)
			}
			if len(tt.refused) == 0 {
				return
			}
			// Forced, the same refusals are returned, not an error.
			g.Force = true
			forced, err := g.Check(t.Context(), action.Env{Kube: kube}, pb, tt.params)
			if err != nil || len(forced) != len(tt.refused) || !strings.HasPrefix(forced[0], "forced: ") {
				t.Errorf("forced: %q, %v", forced, err)
			}
		})
	}
}
