package rotate_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/rotate"
)

// The identity the namespaced option binds (deploy/components/rotate-namespaced).
const (
	kirNamespace = "kir-system"
	kirServe     = "kir-serve"
	kirUser      = "system:serviceaccount:" + kirNamespace + ":" + kirServe
)

// exitForbidden is kir's exit code for a refusal by RBAC.
const exitForbidden = 4

var component = filepath.Join("..", "deploy", "components", "rotate-namespaced")

var installOnce struct {
	sync.Once
	err error
}

// installNamespacedOption installs deploy/components/rotate-namespaced as
// kustomize builds it (once per cluster: the tests share kir-serve, each
// binding it in namespaces of its own), and returns a config acting as
// kir-serve.
func installNamespacedOption(t *testing.T, c *kubetest.Cluster) *rest.Config {
	t.Helper()
	installOnce.Do(func() { installOnce.err = install(t, c) })
	if installOnce.err != nil {
		t.Fatalf("installing %s: %v", component, installOnce.err)
	}
	cfg, err := c.ServiceAccountConfig(t.Context(), kirNamespace, kirServe)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// asKirServe is a client of installNamespacedOption's config.
func asKirServe(t *testing.T, c *kubetest.Cluster) kubernetes.Interface {
	t.Helper()
	kube, err := kubernetes.NewForConfig(installNamespacedOption(t, c))
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

func install(t *testing.T, c *kubetest.Cluster) error {
	ctx := t.Context()
	abs, err := filepath.Abs(component)
	if err != nil {
		return err
	}
	overlay := t.TempDir()
	rel, err := filepath.Rel(overlay, abs) // kustomize wants it relative
	if err != nil {
		return err
	}
	writeFile(t, filepath.Join(overlay, "kustomization.yaml"), "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncomponents:\n  - "+rel+"\n")
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		return err
	}
	built, err := rm.AsYaml()
	if err != nil {
		return err
	}
	manifest := filepath.Join(overlay, "built.yaml")
	writeFile(t, manifest, string(built))
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kirNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(kirNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: kirServe}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return c.Create(ctx, manifest)
}

// bindRotate binds kir-rotate-namespaced in ns as rolebinding.example.yaml
// says.
func bindRotate(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(component, "rolebinding.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rb rbacv1.RoleBinding
	if err := yaml.UnmarshalStrict(b, &rb); err != nil {
		t.Fatal(err)
	}
	rb.Namespace = ns
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(t.Context(), &rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// kir-serve bound through the namespaced option rotates a pod's
// credentials in its namespace, is refused cleanly in another (nothing
// changed, the error names the namespace and what is missing), and can
// list no Secret outside its namespaces.
func TestNamespacedRotation(t *testing.T) {
	t.Parallel()
	w := newSAWorld(t)
	c := w.c
	asKir := asKirServe(t, c)
	bindRotate(t, c, w.ns)
	other := newOtherNamespace(t, c)

	// The pod's credentials, in the namespace kir-serve is bound in.
	env := w.env()
	env.Kube = asKir
	p := rotate.PodParams{Namespace: action.Namespace(w.ns), Pods: []action.PodName{action.PodName(w.quarantined.Name)}, Rotation: "run-namespaced", Credentials: rotate.CredentialsServiceAccounts}
	res, err := rotate.Stores{}.RotatePodCredentials(t.Context(), env, p)
	if err != nil {
		t.Fatalf("rotating pod %s/%s's credentials as %s: %v", w.ns, w.quarantined.Name, kirUser, err)
	}
	out := res.Output.(*rotate.PodOutput)
	if len(out.ServiceAccounts) != 1 || !out.ServiceAccounts[0].Revoked || !out.ServiceAccounts[0].Confirmed {
		t.Errorf("ServiceAccounts = %+v, want app revoked and confirmed (TokenReview through kir-rotate-cluster)", out.ServiceAccounts)
	}
	waitRejected(t, c, "legacy", w.legacyToken)
	waitRejected(t, c, "TokenRequest", w.boundToken)

	// The same in a namespace it is not bound in: refused before anything.
	env = w.env()
	env.Kube = asKir
	_, err = rotate.ServiceAccountAction().Run(t.Context(), env, action.Params{"namespace": other.ns, "name": "app"})
	var denied *rotate.AccessError
	if !errors.As(err, &denied) || denied.Namespace != other.ns || !apierrors.IsForbidden(err) {
		t.Fatalf("rotating %s/app: got %v, want an AccessError for namespace %s", other.ns, err, other.ns)
	}
	for _, want := range []string{"get serviceaccounts", "delete serviceaccounts", "list secrets", "create serviceaccounts/token", "patch deployments.apps"} {
		if !slices.Contains(denied.Missing, want) {
			t.Errorf("missing %q not named; missing: %q", want, denied.Missing)
		}
	}
	if msg := err.Error(); !strings.Contains(msg, "namespace "+other.ns) || !strings.Contains(msg, "nothing was changed") {
		t.Errorf("error %q does not name the namespace and say nothing changed", msg)
	}
	other.unchanged(t, c)
	_, err = rotate.Stores{}.RotatePodCredentials(t.Context(), env, rotate.PodParams{Namespace: action.Namespace(other.ns), Pods: []action.PodName{"web"}, Rotation: "run-other"})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `"pods"`) || !strings.Contains(err.Error(), other.ns) {
		t.Errorf("rotating a pod's credentials in %s: got %v, want forbidden to get pods there", other.ns, err)
	}
	other.unchanged(t, c)
	if len(w.notes) != 1 {
		t.Errorf("noted %d times, want once, by the rotation in %s", len(w.notes), w.ns)
	}

	// No Secret outside the bound namespace: neither cluster-wide nor in
	// the other one; in the bound one, yes (so that the checks can fail).
	if _, err := asKir.CoreV1().Secrets("").List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets cluster-wide as %s: got %v, want forbidden", kirUser, err)
	}
	for _, tt := range []struct {
		ns, verb, resource, sub string
		want                    bool
	}{
		{"", "list", "secrets", "", false},
		{"", "watch", "secrets", "", false},
		{other.ns, "list", "secrets", "", false},
		{other.ns, "get", "secrets", "", false},
		{other.ns, "create", "serviceaccounts", "token", false},
		{"kube-system", "create", "serviceaccounts", "token", false},
		{kirNamespace, "list", "secrets", "", false},
		{kirNamespace, "get", "configmaps", "", false}, // kir-protect only
		{w.ns, "list", "secrets", "", true},
		{w.ns, "create", "serviceaccounts", "token", true},
	} {
		if got := allowed(t, c, tt.ns, tt.verb, tt.resource, tt.sub); got != tt.want {
			t.Errorf("SubjectAccessReview %s: %s %s/%s in namespace %q: allowed %v, want %v", kirUser, tt.verb, tt.resource, tt.sub, tt.ns, got, tt.want)
		}
	}
}

// A grant that misses one permission (here, deleting ServiceAccounts)
// refuses the rotation before its first write, instead of deleting the
// legacy token Secrets and stopping there.
func TestRotationPartialGrant(t *testing.T) {
	t.Parallel()
	c := controlPlane(t)
	other := newOtherNamespace(t, c)
	rules, err := namespacedRules()
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rules {
		if r.APIGroups[0] == "" && r.Resources[0] == "serviceaccounts" {
			rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "delete" })
		}
	}
	kube := clientWithRoleIn(t, c, other.ns, rules)
	_, err = rotate.ServiceAccountAction().Run(t.Context(), action.Env{Kube: kube}, action.Params{"namespace": other.ns, "name": "app"})
	var denied *rotate.AccessError
	if !errors.As(err, &denied) || !slices.Equal(denied.Missing, []string{"delete serviceaccounts"}) {
		t.Errorf("got %v, want an AccessError missing only delete serviceaccounts", err)
	}
	other.unchanged(t, c)
}

// namespacedRules are kir-rotate-namespaced's rules, as shipped.
func namespacedRules() ([]rbacv1.PolicyRule, error) {
	roles, err := shippedClusterRoles()
	if err != nil {
		return nil, err
	}
	return roles["kir-rotate-namespaced"], nil
}

// shippedClusterRoles are the rules of roles.yaml's ClusterRoles, by name.
func shippedClusterRoles() (map[string][]rbacv1.PolicyRule, error) {
	b, err := os.ReadFile(filepath.Join(component, "roles.yaml"))
	if err != nil {
		return nil, err
	}
	out := map[string][]rbacv1.PolicyRule{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &role); err != nil {
			return nil, err
		}
		if role.Kind == "ClusterRole" {
			out[role.Name] = role.Rules
		}
	}
	if out["kir-rotate-namespaced"] == nil || out["kir-rotate-cluster"] == nil {
		return nil, errors.New("roles.yaml lacks kir-rotate-namespaced or kir-rotate-cluster")
	}
	return out, nil
}

// The shipped roles, against the API server's own idea of each resource's
// scope: kir-rotate-namespaced names only namespaced resources (a
// RoleBinding grants nothing else), kir-rotate-cluster only cluster-scoped
// ones, and between them they grant every rule of the rotate.* actions,
// but ClusterSecretStores (left out on purpose: docs/rbac.md).
func TestNamespacedRolesScope(t *testing.T) {
	t.Parallel()
	c := controlPlane(t)
	roles, err := shippedClusterRoles()
	if err != nil {
		t.Fatal(err)
	}
	lists, err := c.Client.Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	namespaced := map[string]bool{} // "resource.group"; absent: not served (External Secrets)
	for _, l := range lists {
		group, _, _ := strings.Cut(l.GroupVersion, "/")
		if !strings.Contains(l.GroupVersion, "/") {
			group = ""
		}
		for _, r := range l.APIResources {
			namespaced[r.Name+"."+group] = r.Namespaced
		}
	}
	grants := func(role, group, resource, verb string) bool {
		for _, r := range roles[role] {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for role, want := range map[string]bool{"kir-rotate-namespaced": true, "kir-rotate-cluster": false} {
		for _, r := range roles[role] {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					if ns, known := namespaced[res+"."+g]; known && ns != want {
						t.Errorf("%s grants %s, which is namespaced=%v", role, strings.TrimSuffix(res+"."+g, "."), ns)
					}
				}
			}
		}
	}
	for _, a := range rotate.Actions(rotate.Stores{}) {
		spec := a.Spec()
		if !strings.HasPrefix(spec.Name, "rotate.") {
			continue
		}
		for _, r := range slices.Concat(spec.Rules, rotate.PlanRules()) {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if res == "clustersecretstores" {
							continue
						}
						if !grants("kir-rotate-namespaced", g, res, v) && !grants("kir-rotate-cluster", g, res, v) {
							t.Errorf("%s needs %s %s, which neither role grants", spec.Name, v, strings.TrimSuffix(res+"."+g, "."))
						}
					}
				}
			}
		}
	}
}

// clientWithRoleIn acts as a new ServiceAccount granted rules in ns only.
func clientWithRoleIn(t *testing.T, c *kubetest.Cluster, ns string, rules []rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kir"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "kir"}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kir"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "kir"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "kir"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.ServiceAccountConfig(ctx, ns, "kir")
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

// otherNamespace is a namespace with a ServiceAccount app, its legacy
// token Secret and a bound token, and a Deployment that runs as it.
type otherNamespace struct {
	ns                 string
	sa                 *corev1.ServiceAccount
	legacy, bound      string
	legacyUID          string
	deploymentRevision int64
}

func newOtherNamespace(t *testing.T, c *kubetest.Cluster) *otherNamespace {
	t.Helper()
	f := c.NewFixture(t, "rotate-other", 0)
	o := &otherNamespace{ns: f.Namespace}
	sa, err := c.Client.CoreV1().ServiceAccounts(o.ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.sa = sa
	o.legacy = legacyToken(t, c, o.ns, "app-token", "app")
	o.bound = requestToken(t, c, o.ns, "app")
	s, err := c.Client.CoreV1().Secrets(o.ns).Get(t.Context(), "app-token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.legacyUID = string(s.UID)
	f.Deploy(t, kubetest.Deployment{Name: "web", ServiceAccount: "app"})
	d, err := c.Client.AppsV1().Deployments(o.ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.deploymentRevision = d.Generation
	return o
}

// unchanged fails the test if the ServiceAccount, its legacy token Secret,
// its tokens or its Deployment changed.
func (o *otherNamespace) unchanged(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	ctx := t.Context()
	if sa, err := c.Client.CoreV1().ServiceAccounts(o.ns).Get(ctx, "app", metav1.GetOptions{}); err != nil || sa.UID != o.sa.UID {
		t.Errorf("ServiceAccount %s/app was replaced or removed (%v)", o.ns, err)
	}
	if s, err := c.Client.CoreV1().Secrets(o.ns).Get(ctx, "app-token", metav1.GetOptions{}); err != nil || string(s.UID) != o.legacyUID {
		t.Errorf("legacy token Secret %s/app-token was deleted (%v)", o.ns, err)
	}
	for what, tok := range map[string]string{"legacy": o.legacy, "bound": o.bound} {
		if ok, _ := review(t, c, tok); !ok {
			t.Errorf("the %s token of %s/app no longer authenticates", what, o.ns)
		}
	}
	if d, err := c.Client.AppsV1().Deployments(o.ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || d.Generation != o.deploymentRevision {
		t.Errorf("Deployment %s/web was changed (%v)", o.ns, err)
	}
}

// allowed asks a SubjectAccessReview whether kir-serve may do verb on
// resource[/sub] in ns ("" for cluster-wide).
func allowed(t *testing.T, c *kubetest.Cluster, ns, verb, resource, sub string) bool {
	t.Helper()
	r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               kirUser,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + kirNamespace, "system:authenticated"},
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource, Subresource: sub},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

// kir rotate serviceaccount, a real process acting as kir-serve bound
// through the namespaced option: the whole path (the guard's protect
// list, the journal, the approval) needs nothing cluster-wide; in a
// namespace it is not bound in, it exits non-zero naming the namespace
// and what is missing, and changes nothing.
func TestNamespacedRotationCLI(t *testing.T) {
	t.Parallel()
	c := controlPlane(t)
	allowedNS, otherNS := newOtherNamespace(t, c), newOtherNamespace(t, c)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, installNamespacedOption(t, c)); err != nil {
		t.Fatal(err)
	}
	bindRotate(t, c, allowedNS.ns)
	state := t.TempDir()
	kir := kubetest.Kir{Kubeconfig: kubeconfig, StateDir: state}

	r := kir.Run(t, "rotate", "serviceaccount", allowedNS.ns+"/app", "--yes", "--confirm-timeout", "30s")
	out := r.Stdout + r.Stderr
	if r.Code != 0 {
		t.Fatalf("kir rotate serviceaccount %s/app as %s: exit %d\n%s", allowedNS.ns, kirUser, r.Code, r.Stderr)
	}
	sa, err := c.Client.CoreV1().ServiceAccounts(allowedNS.ns).Get(t.Context(), "app", metav1.GetOptions{})
	if err != nil || sa.UID == allowedNS.sa.UID {
		t.Errorf("ServiceAccount %s/app not recreated (%v)", allowedNS.ns, err)
	}
	waitRejected(t, c, "legacy", allowedNS.legacy)
	waitRejected(t, c, "TokenRequest", allowedNS.bound)

	r = kir.Run(t, "rotate", "serviceaccount", otherNS.ns+"/app", "--yes", "--confirm-timeout", "30s")
	if r.Code != exitForbidden || !strings.Contains(r.Stderr, "in namespace "+otherNS.ns) || !strings.Contains(r.Stderr, "list secrets") {
		t.Errorf("kir rotate serviceaccount %s/app: exit %d, want %d (forbidden) naming the namespace and list secrets:\n%s", otherNS.ns, r.Code, exitForbidden, r.Stderr)
	}
	otherNS.unchanged(t, c)
	out += r.Stdout + r.Stderr

	// A kubeconfig (TokenRequest) for a ServiceAccount of the bound
	// namespace is issued; for one of the other, no token and no write.
	v, vc := vaultServer(t)
	kir.Env = v.Env()
	kubeconfigFor := func(ns string) kubetest.Result {
		return kir.Run(t, "rotate", "kubeconfig", "--for", ns+"/app", "--store", "vault://secret/kube/"+ns, "--ttl", "1h")
	}
	if r = kubeconfigFor(allowedNS.ns); r.Code != 0 {
		t.Errorf("kir rotate kubeconfig --for %s/app: exit %d\n%s", allowedNS.ns, r.Code, r.Stderr)
	}
	ver, data := vaultData(t, vc, "secret", "kube/"+allowedNS.ns)
	issued, _ := data["kubeconfig"].(string)
	if ver != 1 || !strings.Contains(issued, "token: ") {
		t.Errorf("Vault holds version %d of kube/%s, want 1 holding a kubeconfig with a token", ver, allowedNS.ns)
	}
	out += r.Stdout + r.Stderr
	r = kubeconfigFor(otherNS.ns)
	if r.Code != exitForbidden || !strings.Contains(r.Stderr, `cannot create resource "serviceaccounts/token"`) || !strings.Contains(r.Stderr, otherNS.ns) {
		t.Errorf("kir rotate kubeconfig --for %s/app: exit %d, want refused to mint its token:\n%s", otherNS.ns, r.Code, r.Stderr)
	}
	if s, err := vc.KVv2("secret").Get(t.Context(), "kube/"+otherNS.ns); err == nil {
		t.Errorf("a kubeconfig for %s/app was written to Vault (version %d)", otherNS.ns, s.VersionMetadata.Version)
	}
	out += r.Stdout + r.Stderr
	_, issuedToken, _ := strings.Cut(issued, "token: ")
	issuedToken, _, _ = strings.Cut(issuedToken, "\n")
	tokens := []string{allowedNS.legacy, allowedNS.bound, otherNS.legacy, otherNS.bound, issuedToken}
	noLeak(t, tokens, state)
	for _, tok := range tokens {
		if strings.Contains(out, tok) {
			t.Error("kir printed a token")
		}
	}
}
