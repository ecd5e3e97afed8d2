package serve_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"kir.dev/kir/tamper"
)

const (
	deployNamespace = "kir-system"
	managedBy       = "app.kubernetes.io/managed-by"
)

// TestDeployManifests: deploy/ as shipped, built by kustomize with a
// token in place, is accepted by a real API server object by object
// (server-side dry run, unknown fields refused, no warning — the
// namespace enforces the restricted Pod Security level, which warns
// about a Deployment whose pods it would refuse), and says what the
// receiver needs and nothing more.
func TestDeployManifests(t *testing.T) {
	t.Parallel()
	tok := []byte(base64.StdEncoding.EncodeToString(randomBytes(t, 32)) + "\n") // as the README makes it
	objs, err := buildDeploy(t, tok)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	created, problems := dryRunCreate(t, objs)
	for _, p := range problems {
		t.Error(p)
	}

	byKind := map[string][]*unstructured.Unstructured{}
	agentKinds := map[string][]*unstructured.Unstructured{}
	responderKinds := map[string][]*unstructured.Unstructured{}
	for _, o := range created {
		if got := o.GetLabels()[managedBy]; got != "kir" {
			t.Errorf("%s %s: %s=%q, want kir", o.GetKind(), o.GetName(), managedBy, got)
		}
		// The node agent's component is checked on its own.
		if o.GetLabels()["app.kubernetes.io/name"] == "kir-node-agent" || o.GetName() == "kir-node" {
			agentKinds[o.GetKind()] = append(agentKinds[o.GetKind()], o)
			continue
		}
		// So is the responders' Role.
		if o.GetLabels()["app.kubernetes.io/component"] == "responders" {
			responderKinds[o.GetKind()] = append(responderKinds[o.GetKind()], o)
			continue
		}
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
	}
	checkNodeAgent(t, agentKinds)
	checkResponders(t, responderKinds)

	d := one[appsv1.Deployment](t, byKind, "kir-serve")
	if d.Namespace != deployNamespace || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment %s/%s with %v replicas, want 2 in %s", d.Namespace, d.Name, d.Spec.Replicas, deployNamespace)
	}
	pods := labels.Set(d.Spec.Template.Labels)
	secret := one[corev1.Secret](t, byKind, "kir-serve-token")
	if got := secret.Data["token"]; string(got) != string(tok) {
		t.Errorf("Secret kir-serve-token holds %d bytes under token, want the %d of the token file", len(got), len(tok))
	}
	checkMounts(t, d, secret)
	if sa := one[corev1.ServiceAccount](t, byKind, d.Spec.Template.Spec.ServiceAccountName); sa.Namespace != deployNamespace {
		t.Errorf("ServiceAccount %s in %q, want %s", sa.Name, sa.Namespace, deployNamespace)
	}

	// Claims are Leases in the receiver's namespace, records its
	// Responses (create, and their status), the budget its one ConfigMap,
	// and nothing else.
	roles := all[rbacv1.Role](t, byKind)
	if len(roles) == 0 {
		t.Error("deploy/ has no Role for the claims' Leases")
	}
	want := map[string][]string{ // group/resource → the verbs serve.Claims and serve.Records use
		"coordination.k8s.io/leases": {"get", "list", "watch", "create", "update", "patch", "delete"},
		"kir.dev/responses":          {"get", "list", "create"},
		"kir.dev/responses/status":   {"update"},
		"/configmaps/kir-budget":     {"get", "update"},
		"/configmaps":                {"create"},
	}
	for _, r := range roles {
		for _, rule := range r.Rules {
			if len(rule.APIGroups) != 1 || len(rule.Resources) != 1 {
				t.Errorf("Role %s: rule %v names several groups or resources", r.Name, rule)
				continue
			}
			gr := rule.APIGroups[0] + "/" + rule.Resources[0]
			if len(rule.ResourceNames) == 1 {
				gr += "/" + rule.ResourceNames[0]
			}
			verbs, ok := want[gr]
			if !ok || !slices.Equal(rule.Verbs, verbs) {
				t.Errorf("Role %s grants %v on %s; want only %v", r.Name, rule.Verbs, gr, verbs)
			}
			delete(want, gr)
		}
	}
	if len(want) > 0 {
		t.Errorf("deploy/ grants kir serve nothing on %v, which claims and records need", want)
	}
	if crds := byKind["CustomResourceDefinition"]; len(crds) != 1 || crds[0].GetName() != "responses.kir.dev" {
		t.Errorf("deploy/ installs CRDs %v, want responses.kir.dev", crds)
	}
	for _, rb := range all[rbacv1.RoleBinding](t, byKind) {
		if rb.RoleRef.Kind != "Role" || !slices.ContainsFunc(roles, func(r *rbacv1.Role) bool { return r.Name == rb.RoleRef.Name }) {
			t.Errorf("RoleBinding %s binds %s %s, not the claims' Role", rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name)
		}
		checkSubjects(t, "RoleBinding "+rb.Name, rb.Namespace, rb.Subjects)
	}

	// The receiver contains and collects; the opt-in roles (Secrets,
	// nodes/proxy) stay unbound.
	var bound []string
	clusterRoles := map[string]bool{}
	for _, cr := range all[rbacv1.ClusterRole](t, byKind) {
		clusterRoles[cr.Name] = true
	}
	for _, crb := range all[rbacv1.ClusterRoleBinding](t, byKind) {
		if crb.RoleRef.Kind != "ClusterRole" || !clusterRoles[crb.RoleRef.Name] {
			t.Errorf("ClusterRoleBinding %s binds %s %s, not a ClusterRole of deploy/", crb.Name, crb.RoleRef.Kind, crb.RoleRef.Name)
		}
		bound = append(bound, crb.RoleRef.Name)
		checkSubjects(t, "ClusterRoleBinding "+crb.Name, "", crb.Subjects)
	}
	slices.Sort(bound)
	if diff := cmp.Diff([]string{"kir-collect", "kir-contain", "kir-serve-budget", "kir-serve-tamper"}, bound); diff != "" {
		t.Errorf("ClusterRoles bound (-want +got):\n%s", diff)
	}

	// The tamper guard gets exactly what it says it needs.
	tamperRole := one[rbacv1.ClusterRole](t, byKind, "kir-serve-tamper")
	if diff := cmp.Diff(tamper.ClusterRules(), tamperRole.Rules); diff != "" {
		t.Errorf("ClusterRole kir-serve-tamper is not tamper.ClusterRules() (-want +got):\n%s", diff)
	}

	np := one[networkingv1.NetworkPolicy](t, byKind, "kir-serve-ingress")
	if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || sel.Empty() || !sel.Matches(pods) {
		t.Errorf("NetworkPolicy %s selects %v (%v), want the kir-serve pods %v and only them", np.Name, np.Spec.PodSelector, err, pods)
	}
	for _, in := range np.Spec.Ingress {
		for _, p := range in.Ports {
			if p.Port == nil || !hasPort(d, p.Port.String()) {
				t.Errorf("NetworkPolicy %s admits port %v, which the receiver does not listen on", np.Name, p.Port)
			}
		}
	}
	svc := one[corev1.Service](t, byKind, "kir-serve")
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) {
		t.Errorf("Service %s selects %v, want the kir-serve pods %v", svc.Name, svc.Spec.Selector, pods)
	}
	for _, p := range svc.Spec.Ports {
		if !hasPort(d, p.TargetPort.String()) {
			t.Errorf("Service %s targets port %s, which the receiver does not listen on", svc.Name, p.TargetPort.String())
		}
	}
}

// TestDeployNeedsToken: without deploy/components/serve/token the build
// fails: the receiver is never deployed with a token nobody chose.
func TestDeployNeedsToken(t *testing.T) {
	t.Parallel()
	_, err := buildDeploy(t, nil)
	if err == nil {
		t.Fatal("kustomize build without a token file succeeded")
	}
	if !strings.Contains(err.Error(), "token") {
		t.Errorf("error %v does not name the token file", err)
	}
}

// TestDeployDryRunCatches: the dry run above would catch a Deployment
// whose pods the restricted namespace refuses, and a misspelt field.
func TestDeployDryRunCatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(d map[string]any) error
		want   string
	}{
		{name: "privileged container", want: "privileged", mutate: func(d map[string]any) error {
			containers, _, _ := unstructured.NestedSlice(d, "spec", "template", "spec", "containers")
			containers[0].(map[string]any)["securityContext"] = map[string]any{"privileged": true}
			return unstructured.SetNestedSlice(d, containers, "spec", "template", "spec", "containers")
		}},
		{name: "misspelt field", want: `unknown field "spec.replica"`, mutate: func(d map[string]any) error {
			return unstructured.SetNestedField(d, int64(2), "spec", "replica")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := buildDeploy(t, []byte("a-token-for-a-broken-deploy-0123456789\n"))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.GetKind() == "Deployment" {
					if err := tt.mutate(o.Object); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, problems := dryRunCreate(t, objs)
			if text := strings.Join(problems, "\n"); !strings.Contains(text, tt.want) {
				t.Errorf("problems do not mention %q:\n%s", tt.want, text)
			}
		})
	}
}

// buildDeploy runs kustomize on a copy of deploy/ with tok as
// deploy/components/serve/token (none if nil).
func buildDeploy(t *testing.T, tok []byte) ([]*unstructured.Unstructured, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := os.CopyFS(dir, os.DirFS("../deploy")); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "components", "serve", "token")
	if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) { // a developer's own, git-ignored
		t.Fatal(err)
	}
	if tok != nil {
		writeTestFile(t, tokenFile, tok)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON: kyaml's own maps hold ints, which unstructured
		// objects cannot.
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// dryRunCreate creates objs on the test cluster with a server-side dry
// run and strict field validation, the Namespaces for real first (a dry
// run into a missing namespace fails), and returns what the server made
// of each, and every error and warning it answered.
func dryRunCreate(t *testing.T, objs []*unstructured.Unstructured) (created []*unstructured.Unstructured, problems []string) {
	t.Helper()
	ctx := t.Context()
	warned := &warnings{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandlerWithContext = warned
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	client := func(o *unstructured.Unstructured) dynamic.ResourceInterface {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk, o.GetName(), err)
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			return dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		return dyn.Resource(m.Resource)
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}

	// Namespaces first, each dry-run then made; existing from an earlier
	// run of this test in the same cluster is fine.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return compareBool(a.GetKind() != "Namespace", b.GetKind() != "Namespace")
	})
	for _, o := range objs {
		c := client(o)
		got, err := c.Create(ctx, o, dryRun)
		if o.GetKind() == "Namespace" {
			if err == nil {
				_, err = c.Create(ctx, o, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
			}
			if apierrors.IsAlreadyExists(err) {
				got, err = o, nil
			}
		}
		if o.GetKind() == "CustomResourceDefinition" && apierrors.IsAlreadyExists(err) {
			// TestMain installed it: the shipped one must still be a valid
			// update of it.
			got, err = dryRunUpdate(ctx, c, o)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err))
			continue
		}
		created = append(created, got)
	}
	for _, w := range warned.all() {
		problems = append(problems, "API server warning: "+w)
	}
	return created, problems
}

// dryRunUpdate sends o as a server-side dry-run update of the existing
// object of its name.
func dryRunUpdate(ctx context.Context, c dynamic.ResourceInterface, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	cur, err := c.Get(ctx, o.GetName(), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	o = o.DeepCopy()
	o.SetResourceVersion(cur.GetResourceVersion())
	return c.Update(ctx, o, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// warnings collects the API server's warnings.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// all converts the objects of T's kind (its Go type's name).
func all[T any](t *testing.T, byKind map[string][]*unstructured.Unstructured) []*T {
	t.Helper()
	kind := reflect.TypeFor[T]().Name()
	var out []*T
	for _, u := range byKind[kind] {
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			t.Fatalf("%s %s: %v", kind, u.GetName(), err)
		}
		out = append(out, v)
	}
	return out
}

// one is the object of T's kind named name.
func one[T any](t *testing.T, byKind map[string][]*unstructured.Unstructured, name string) *T {
	t.Helper()
	for _, u := range byKind[reflect.TypeFor[T]().Name()] {
		if u.GetName() == name {
			v := new(T)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("deploy/ has no %s %s", reflect.TypeFor[T]().Name(), name)
	return nil
}

// checkMounts: the receiver reads its token where the Secret is mounted,
// and keeps its state on a volume (its root file system is read-only).
func checkMounts(t *testing.T, d *appsv1.Deployment, secret *corev1.Secret) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	c := d.Spec.Template.Spec.Containers[0]
	mounted := func(path string) (corev1.Volume, string, bool) {
		for _, m := range c.VolumeMounts {
			if rest, ok := strings.CutPrefix(path, m.MountPath+"/"); ok {
				return volumes[m.Name], rest, true
			}
		}
		return corev1.Volume{}, "", false
	}
	flags := map[string]string{}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok {
			flags[k] = v
		}
	}
	v, key, ok := mounted(flags["--token-file"])
	if !ok || v.Secret == nil || v.Secret.SecretName != secret.Name || secret.Data[key] == nil {
		t.Errorf("--token-file=%s is not a key of Secret %s as mounted (volume %+v, key %q)", flags["--token-file"], secret.Name, v, key)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("container %s: root file system not read-only", c.Name)
	}
	if _, _, ok := mounted(flags["--state-dir"] + "/runs"); !ok {
		t.Errorf("--state-dir=%s is on the read-only root file system", flags["--state-dir"])
	}
}

// checkSubjects: a binding's only subject is the receiver's service
// account (a RoleBinding's subject may leave its namespace implicit).
func checkSubjects(t *testing.T, what, bindingNS string, subjects []rbacv1.Subject) {
	t.Helper()
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kir-serve", Namespace: deployNamespace}}
	got := slices.Clone(subjects)
	for i := range got {
		if got[i].Namespace == "" {
			got[i].Namespace = bindingNS
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s subjects (-want +got):\n%s", what, diff)
	}
}

// hasPort reports whether the receiver's container declares port, by
// name or number.
func hasPort(d *appsv1.Deployment, port string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
				return true
			}
		}
	}
	return false
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkResponders: the responders' Role grants what kir runs approve,
// deny, pause and unpause use, in kir's namespace, to the group
// kir:responders and nobody else.
func checkResponders(t *testing.T, byKind map[string][]*unstructured.Unstructured) {
	t.Helper()
	role := one[rbacv1.Role](t, byKind, "kir-responder")
	binding := one[rbacv1.RoleBinding](t, byKind, "kir-responder")
	if role.Namespace != deployNamespace || binding.Namespace != deployNamespace {
		t.Errorf("responders' Role in %q, binding in %q; want %s", role.Namespace, binding.Namespace, deployNamespace)
	}
	got := map[string][]string{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			got[strings.Join(r.APIGroups, ",")+"/"+res+"/"+strings.Join(r.ResourceNames, ",")] = r.Verbs
		}
	}
	want := map[string][]string{
		"kir.dev/responses/":          {"get", "list", "watch", "update"},
		"/configmaps/kir-budget":      {"get", "update"},
		"/configmaps/":                {"create"},
		"coordination.k8s.io/leases/": {"get", "create", "patch", "delete"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responders' Role rules (-want +got):\n%s", diff)
	}
	wantSubjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "kir:responders"}}
	if diff := cmp.Diff(wantSubjects, binding.Subjects); diff != "" || binding.RoleRef.Name != role.Name {
		t.Errorf("responders' binding to %s (-want +got):\n%s", binding.RoleRef.Name, diff)
	}
}
