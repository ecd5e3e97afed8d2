package serve_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// checkNodeAgent: deploy/'s node agent is root on its node, as documented,
// and no more: in a privileged namespace of its own (kir-system stays
// restricted), it adds only the capabilities it uses, reads what it needs
// cluster-wide, and writes only Events there and its Leases in kir-system.
func checkNodeAgent(t *testing.T, byKind map[string][]*unstructured.Unstructured) {
	t.Helper()
	ns := one[corev1.Namespace](t, byKind, "kir-node")
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("Namespace kir-node enforces %q, want privileged (the agent needs hostNetwork, hostPID, capabilities)", got)
	}
	ds := one[appsv1.DaemonSet](t, byKind, "kir-node-agent")
	spec := ds.Spec.Template.Spec
	if ds.Namespace != "kir-node" || !spec.HostNetwork || !spec.HostPID {
		t.Errorf("DaemonSet %s/%s: hostNetwork %v, hostPID %v; want both, in kir-node", ds.Namespace, ds.Name, spec.HostNetwork, spec.HostPID)
	}
	if len(spec.Containers) != 1 || spec.Containers[0].SecurityContext == nil || spec.Containers[0].SecurityContext.Capabilities == nil {
		t.Fatalf("DaemonSet kir-node-agent: want one container with capabilities set")
	}
	c := spec.Containers[0]
	if diff := cmp.Diff([]string{"node", "agent"}, c.Args); diff != "" {
		t.Errorf("agent args (-want +got):\n%s", diff)
	}
	caps := c.SecurityContext.Capabilities
	if diff := cmp.Diff([]corev1.Capability{"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}, caps.Add); diff != "" || !slices.Equal(caps.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("agent capabilities add (-want +got):\n%s; drop %v, want ALL", diff, caps.Drop)
	}
	if c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
		t.Error("agent is privileged; it needs only its capabilities")
	}

	cr := one[rbacv1.ClusterRole](t, byKind, "kir-node-agent")
	for _, r := range cr.Rules {
		for _, v := range r.Verbs {
			write := v != "get" && v != "list" && v != "watch"
			if write && !(slices.Equal(r.Resources, []string{"events"}) && v == "create") {
				t.Errorf("ClusterRole kir-node-agent may %s %v: cluster-wide, the agent writes only Events", v, r.Resources)
			}
			if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
				t.Errorf("ClusterRole kir-node-agent reaches %v", r.Resources)
			}
		}
	}
	role := one[rbacv1.Role](t, byKind, "kir-node-agent")
	if role.Namespace != deployNamespace {
		t.Errorf("Role kir-node-agent in %q, want %s (where kir reads the reports)", role.Namespace, deployNamespace)
	}
	for _, r := range role.Rules {
		if !slices.Equal(r.Resources, []string{"leases"}) {
			t.Errorf("Role kir-node-agent grants %v; want leases only", r.Resources)
		}
	}
	rb := one[rbacv1.RoleBinding](t, byKind, "kir-node-agent")
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kir-node-agent", Namespace: "kir-node"}}
	if diff := cmp.Diff(want, rb.Subjects); diff != "" || rb.RoleRef.Name != "kir-node-agent" {
		t.Errorf("RoleBinding kir-node-agent binds %s to (-want +got):\n%s", rb.RoleRef.Name, diff)
	}
	checkCaptureAccess(t, byKind, c)
}

// checkCaptureAccess: kir serve fetches captures through pods/proxy in
// the agents' namespace only (pods/proxy reaches every port of a pod),
// from the port the agent serves, and the captures' volume is bounded.
func checkCaptureAccess(t *testing.T, byKind map[string][]*unstructured.Unstructured, c corev1.Container) {
	t.Helper()
	role := one[rbacv1.Role](t, byKind, "kir-node-capture")
	if role.Namespace != "kir-node" {
		t.Errorf("Role kir-node-capture in %q, want kir-node: pods/proxy only where the agents run", role.Namespace)
	}
	for _, kind := range []string{"ClusterRole"} {
		for _, u := range byKind[kind] {
			if strings.Contains(fmt.Sprint(u.Object["rules"]), "pods/proxy") {
				t.Errorf("%s %s grants pods/proxy cluster-wide", kind, u.GetName())
			}
		}
	}
	rb := one[rbacv1.RoleBinding](t, byKind, "kir-node-capture")
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kir-serve", Namespace: deployNamespace}}
	if diff := cmp.Diff(want, rb.Subjects); diff != "" || rb.RoleRef.Name != "kir-node-capture" || rb.Namespace != "kir-node" {
		t.Errorf("RoleBinding kir-node-capture binds %s in %s to (-want +got):\n%s", rb.RoleRef.Name, rb.Namespace, diff)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9464 {
		t.Errorf("agent ports %+v, want the capture port 9464 (kir node agent --listen's default)", c.Ports)
	}
	ds := one[appsv1.DaemonSet](t, byKind, "kir-node-agent")
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == "captures" && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil) {
			t.Errorf("volume captures: want a bounded emptyDir, got %+v", v.VolumeSource)
		}
	}
}
