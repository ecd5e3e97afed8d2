package rotate_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/rotate"
)

func TestX509ParamsValidate(t *testing.T) {
	t.Parallel()
	ok := rotate.SecretParams{Ref: "vault://secret/kube", Rotation: "run-1"}
	tests := []struct {
		name string
		p    rotate.X509Params
		want []string // substrings of the error; none: valid
	}{
		{"minimal", rotate.X509Params{SecretParams: ok, User: "alice"}, nil},
		{"expiration", rotate.X509Params{SecretParams: ok, User: "alice", Expiration: action.Duration(10 * time.Minute)}, nil},
		{"no user", rotate.X509Params{SecretParams: ok}, []string{"user must not be empty"}},
		{"system user", rotate.X509Params{SecretParams: ok, User: "system:kube-scheduler"}, []string{"cluster's own components"}},
		{"short expiration", rotate.X509Params{SecretParams: ok, User: "alice", Expiration: action.Duration(time.Minute)}, []string{"10m0s or more"}},
		{"every problem", rotate.X509Params{SecretParams: rotate.SecretParams{Ref: "s3://x"}, Expiration: action.Duration(-time.Hour)},
			[]string{"rotation must not be empty", "user must not be empty", "10m0s or more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.p.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestX509RestoreParamsValidate(t *testing.T) {
	t.Parallel()
	if err := (rotate.X509RestoreParams{User: "alice", NewUser: "alice-kir-0123456789"}).Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	// Swapped, the restore would move alice's bindings further away.
	if err := (rotate.X509RestoreParams{User: "alice-kir-0123456789", NewUser: "alice"}).Validate(); err == nil {
		t.Error("Validate() accepted a newUser that is not alice-kir-SUFFIX")
	}
}

// journal is what the playbook engine keeps of a step: the notes of each
// attempt. fail, when set, refuses a note, as a crash just before the
// write the note announces would leave things.
type journal struct {
	notes []json.RawMessage
	fail  func(note string) bool
}

var errRefused = errors.New("journal refused the note")

func (j *journal) note(d any) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if j.fail != nil && j.fail(string(b)) {
		return errRefused
	}
	j.notes = append(j.notes, b)
	return nil
}

// x509Fixture is a user with a client certificate, bound by a RoleBinding
// (with bob) to read pods in a namespace and by a ClusterRoleBinding to get
// namespaces.
type x509Fixture struct {
	c     *kubetest.Cluster
	ns    string
	user  string
	rb    string // RoleBinding in ns
	crb   string // ClusterRoleBinding
	alice kubernetes.Interface
}

func newX509Fixture(t *testing.T) x509Fixture {
	t.Helper()
	c := controlPlane(t)
	ctx := t.Context()
	ns := namespace(t, c)
	f := x509Fixture{c: c, ns: ns, user: "alice-" + ns, rb: "readers", crb: ns + "-alice"}
	rbac := c.Client.RbacV1()
	for name, rule := range map[string]rbacv1.PolicyRule{
		ns + "-pods":       {APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		ns + "-namespaces": {APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
	} {
		if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{rule}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: f.rb},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ns + "-pods"},
		Subjects:   []rbacv1.Subject{user(f.user), user("bob")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: f.crb},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ns + "-namespaces"},
		Subjects:   []rbacv1.Subject{user(f.user)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // the test's is done
		_ = rbac.ClusterRoleBindings().Delete(ctx, f.crb, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, ns+"-pods", metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, ns+"-namespaces", metav1.DeleteOptions{})
	})
	cfg, err := c.ClientCertConfig(ctx, f.user)
	if err != nil {
		t.Fatal(err)
	}
	f.alice = mustClient(t, cfg)
	f.waitPods(t, f.alice, nil)
	return f
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func mustClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// waitPods waits until listing the fixture's pods as client succeeds
// (want nil) or is forbidden (want a Forbidden error): RBAC follows its
// bindings through a watch, not at once.
func (f x509Fixture) waitPods(t *testing.T, client kubernetes.Interface, wantForbidden error) {
	t.Helper()
	var last error
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		_, last = client.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{})
		if wantForbidden != nil {
			return apierrors.IsForbidden(last), nil
		}
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("listing pods in %s: got %v, want forbidden %v", f.ns, last, wantForbidden != nil)
	}
}

func (f x509Fixture) subjects(t *testing.T) (rb, crb []rbacv1.Subject) {
	t.Helper()
	rbac := f.c.Client.RbacV1()
	r, err := rbac.RoleBindings(f.ns).Get(t.Context(), f.rb, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := rbac.ClusterRoleBindings().Get(t.Context(), f.crb, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Subjects, cr.Subjects
}

func (f x509Fixture) params() rotate.X509Params {
	return rotate.X509Params{
		SecretParams: rotate.SecretParams{Ref: "vault://secret/x509/" + f.ns, Rotation: "run-x509-" + f.ns},
		User:         f.user, Expiration: action.Duration(time.Hour),
	}
}

// storedKubeconfig reads the kubeconfig a rotation stored in Vault, and
// returns its config.
func storedKubeconfig(t *testing.T, ns string, wantVersion int) *rest.Config {
	t.Helper()
	_, vc := vaultServer(t)
	ver, data := vaultData(t, vc, "secret", "x509/"+ns)
	if ver != wantVersion {
		t.Fatalf("Vault holds version %d, want %d", ver, wantVersion)
	}
	kubeconfig, _ := data["kubeconfig"].(string)
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		t.Fatalf("the stored kubeconfig does not load: %v", err)
	}
	if len(cfg.KeyData) == 0 || len(cfg.CertData) == 0 {
		t.Fatal("the stored kubeconfig holds no client certificate and key")
	}
	return cfg
}

func whoami(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	who, err := client.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the stored kubeconfig does not authenticate: %v", err)
	}
	return who.Status.UserInfo.Username
}

// planted returns the strings of a PEM key that must appear nowhere: each
// line of its body, and the whole as a kubeconfig's client-key-data.
func planted(keyPEM []byte) []string {
	out := []string{base64.StdEncoding.EncodeToString(keyPEM)}
	for _, l := range strings.Split(string(keyPEM), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// dump writes what a rotation leaves behind (the journal's notes and the
// results) to a directory, for noLeak.
func dump(t *testing.T, notes []json.RawMessage, results ...action.Result) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(map[string]any{"notes": notes, "results": results})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "PRIVATE KEY") {
		t.Error("the journal or a result holds a PEM private key")
	}
	return dir
}

func bindingWrites(res action.Result) []action.Write {
	var out []action.Write
	for _, w := range res.Writes {
		if strings.HasSuffix(w.Kind, "Binding") {
			out = append(out, w)
		}
	}
	return out
}

// rotate-x509.user, run with exactly the RBAC rules it declares: a server
// dry run changes nothing; the rotation moves alice's bindings to a new
// user, whose kubeconfig lands in Vault and can do what alice could, while
// alice's certificate, still valid, is forbidden; resumed with the first
// attempt's notes it changes nothing; rotate-x509.restore gives alice her
// bindings back.
func TestX509UserRotation(t *testing.T) {
	v, vc := vaultServer(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	f := newX509Fixture(t)
	ctx := t.Context()
	kir := clientWithRules(t, f.c, f.ns, "kir", rotate.Stores{}.X509UserAction().Spec().Rules)
	env := action.Env{Kube: kir, Cluster: f.c.Config.Host, ClusterCA: f.c.Config.CAData, Incident: "inc-x509"}
	wantRB, wantCRB := f.subjects(t)

	dry := env
	dry.DryRun = action.DryRunServer
	j := &journal{}
	dry.Note = j.note
	res, err := rotate.Stores{}.RotateX509User(ctx, dry, f.params())
	if err != nil {
		t.Fatalf("server dry run: %v", err)
	}
	if !res.Changed || len(bindingWrites(res)) != 2 {
		t.Errorf("server dry run: changed %v with binding writes %+v, want 2", res.Changed, bindingWrites(res))
	}
	rb, crb := f.subjects(t)
	if diff := cmp.Diff(wantRB, rb); diff != "" {
		t.Errorf("server dry run changed the RoleBinding (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantCRB, crb); diff != "" {
		t.Errorf("server dry run changed the ClusterRoleBinding (-want +got):\n%s", diff)
	}
	if _, err := vc.KVv2("secret").Get(ctx, "x509/"+f.ns); err == nil {
		t.Error("server dry run wrote to Vault")
	}
	for _, n := range j.notes { // the secret store's read version may be noted
		if strings.Contains(string(n), "x509User") {
			t.Errorf("server dry run noted %s, want no binding or certificate", n)
		}
	}

	first := &journal{}
	env.Note = first.note
	res, err = rotate.Stores{}.RotateX509User(ctx, env, f.params())
	if err != nil {
		t.Fatalf("RotateX509User: %v", err)
	}
	out, ok := res.Output.(rotate.X509Output)
	if !ok {
		t.Fatalf("output is %T, want rotate.X509Output", res.Output)
	}
	newUser := out.NewUser
	if want := rotate.X509NewUser(f.params().Rotation, f.user); newUser != want || !strings.HasPrefix(newUser, f.user+"-kir-") {
		t.Fatalf("newUser %q, want %q (%s-kir-SUFFIX)", newUser, want, f.user)
	}
	wantBindings := []rotate.X509Binding{{Kind: "ClusterRoleBinding", Name: f.crb}, {Kind: "RoleBinding", Namespace: f.ns, Name: f.rb}}
	if diff := cmp.Diff(wantBindings, out.Bindings); diff != "" {
		t.Errorf("bindings (-want +got):\n%s", diff)
	}
	if out.OldVersion != "0" || out.NewVersion != "1" || out.Ref != "vault://secret/x509/"+f.ns+"#kubeconfig" {
		t.Errorf("secret rotation %+v, want vault://secret/x509/%s#kubeconfig from version 0 to 1", out.SecretRotation, f.ns)
	}
	expires, err := time.Parse(time.RFC3339, out.CertificateExpires)
	if err != nil || time.Until(expires) < 50*time.Minute || time.Until(expires) > 61*time.Minute {
		t.Errorf("certificateExpires %q, want in about an hour (%v)", out.CertificateExpires, err)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "cannot be revoked") || !strings.Contains(res.Warnings[0], newUser) || !strings.Contains(res.Warnings[0], "system:masters") {
		t.Errorf("warnings %q, want the first to say the old certificate cannot be revoked", res.Warnings)
	}
	rb, crb = f.subjects(t)
	if diff := cmp.Diff([]rbacv1.Subject{user(newUser), user("bob")}, rb); diff != "" {
		t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]rbacv1.Subject{user(newUser)}, crb); diff != "" {
		t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
	}

	f.waitPods(t, f.alice, errors.New("forbidden"))
	cfg := storedKubeconfig(t, f.ns, 1)
	stored := mustClient(t, cfg)
	if got := whoami(t, stored); got != newUser {
		t.Errorf("the stored kubeconfig authenticates as %q, want %q", got, newUser)
	}
	f.waitPods(t, stored, nil)
	if _, err := stored.CoreV1().Namespaces().Get(ctx, f.ns, metav1.GetOptions{}); err != nil {
		t.Errorf("the ClusterRoleBinding does not grant the new user: %v", err)
	}
	csrs, err := f.c.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kir"})
	if err != nil {
		t.Fatal(err)
	}
	if len(csrs.Items) != 0 {
		t.Errorf("%d CertificateSigningRequests of kir's are left, want none", len(csrs.Items))
	}

	// Resumed with the first attempt's notes: every write is found done.
	second := &journal{}
	resumed := env
	resumed.Note, resumed.Notes = second.note, first.notes
	res2, err := rotate.Stores{}.RotateX509User(ctx, resumed, f.params())
	if err != nil {
		t.Fatalf("RotateX509User resumed: %v", err)
	}
	if w := bindingWrites(res2); len(w) != 0 {
		t.Errorf("the resumed rotation changed bindings again: %+v", w)
	}
	if len(second.notes) != 0 {
		t.Errorf("the resumed rotation noted %s, want nothing", second.notes)
	}
	if diff := cmp.Diff(out, res2.Output); diff != "" {
		t.Errorf("resumed output (-first +resumed):\n%s", diff)
	}
	storedKubeconfig(t, f.ns, 1)

	noLeak(t, planted(cfg.KeyData), dump(t, first.notes, res, res2))

	restorer := clientWithRules(t, f.c, f.ns, "kir-restore", rotate.X509RestoreAction().Spec().Rules)
	back, err := rotate.RestoreX509Bindings(ctx, action.Env{Kube: restorer}, rotate.X509RestoreParams{User: f.user, NewUser: newUser})
	if err != nil {
		t.Fatalf("RestoreX509Bindings: %v", err)
	}
	if !back.Changed || len(bindingWrites(back)) != 2 {
		t.Errorf("restore: changed %v with writes %+v, want 2 binding updates", back.Changed, back.Writes)
	}
	rb, crb = f.subjects(t)
	if diff := cmp.Diff(wantRB, rb); diff != "" {
		t.Errorf("restored RoleBinding (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantCRB, crb); diff != "" {
		t.Errorf("restored ClusterRoleBinding (-want +got):\n%s", diff)
	}
	f.waitPods(t, f.alice, nil)
	f.waitPods(t, stored, errors.New("forbidden"))
	again, err := rotate.RestoreX509Bindings(ctx, action.Env{Kube: restorer}, rotate.X509RestoreParams{User: f.user, NewUser: newUser})
	if err != nil || again.Changed {
		t.Errorf("restoring again: changed %v, err %v; want no change", again.Changed, err)
	}
}

// A rotation killed after its certificate was signed but before the
// kubeconfig was stored lost the key: resumed, it moves no binding again,
// deletes the signed request and stores a kubeconfig with a new key.
func TestX509UserResumeAfterLostKey(t *testing.T) {
	v, _ := vaultServer(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	f := newX509Fixture(t)
	ctx := t.Context()
	env := action.Env{Kube: f.c.Client, Cluster: f.c.Config.Host, ClusterCA: f.c.Config.CAData}

	// The note that precedes the Vault write is refused: as if kir died
	// between signing and storing.
	j := &journal{fail: func(n string) bool { return strings.HasPrefix(n, `{"write":`) }}
	env.Note = j.note
	res, err := rotate.Stores{}.RotateX509User(ctx, env, f.params())
	if !errors.Is(err, errRefused) {
		t.Fatalf("RotateX509User = %v, want the refused note's error", err)
	}
	newUser := res.Output.(rotate.X509Output).NewUser
	csrs := f.c.Client.CertificatesV1().CertificateSigningRequests()
	left, err := csrs.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kir"})
	if err != nil {
		t.Fatal(err)
	}
	var lost []byte
	for _, c := range left.Items {
		if len(c.Status.Certificate) > 0 && certCN(t, c.Status.Certificate) == newUser {
			lost = c.Status.Certificate
		}
	}
	if lost == nil {
		t.Fatalf("no signed CertificateSigningRequest for %s is left by the interrupted attempt", newUser)
	}

	resumed := env
	resumed.Note, resumed.Notes = (&journal{}).note, j.notes
	res, err = rotate.Stores{}.RotateX509User(ctx, resumed, f.params())
	if err != nil {
		t.Fatalf("RotateX509User resumed: %v", err)
	}
	if w := bindingWrites(res); len(w) != 0 {
		t.Errorf("the resumed rotation changed bindings again: %+v", w)
	}
	var verbs []string
	for _, w := range res.Writes {
		verbs = append(verbs, w.Verb+" "+w.Kind)
	}
	want := []string{"delete CertificateSigningRequest", "create CertificateSigningRequest", "update CertificateSigningRequest/approval", "delete CertificateSigningRequest"}
	if diff := cmp.Diff(want, verbs); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	cfg := storedKubeconfig(t, f.ns, 1)
	if string(cfg.CertData) == string(lost) {
		t.Error("the stored kubeconfig carries the certificate whose key was lost")
	}
	stored := mustClient(t, cfg)
	if got := whoami(t, stored); got != newUser {
		t.Errorf("the stored kubeconfig authenticates as %q, want %q", got, newUser)
	}
	f.waitPods(t, stored, nil)
	f.waitPods(t, f.alice, errors.New("forbidden"))
}

func certCN(t *testing.T, certPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Subject.CommonName
}

// The restore reads a binding again when its update conflicts, keeps the
// subjects it does not concern, and names the old user once even where
// someone had already added it back.
func TestX509RestoreRetriesConflicts(t *testing.T) {
	t.Parallel()
	const old, moved = "alice", "alice-kir-0123456789"
	kube := fake.NewClientset(
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "readers"}, Subjects: []rbacv1.Subject{user(moved), user("bob")}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "viewers"}, Subjects: []rbacv1.Subject{user(old), {Kind: rbacv1.GroupKind, Name: "ops"}, user(moved)}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "others"}, Subjects: []rbacv1.Subject{user("carol")}},
	)
	conflicts := 0
	kube.PrependReactor("update", "rolebindings", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts++; conflicts == 1 {
			return true, nil, apierrors.NewConflict(rbacv1.Resource("rolebindings"), "readers", errors.New("changed meanwhile"))
		}
		return false, nil, nil
	})
	res, err := rotate.RestoreX509Bindings(t.Context(), action.Env{Kube: kube}, rotate.X509RestoreParams{User: old, NewUser: moved})
	if err != nil {
		t.Fatalf("RestoreX509Bindings: %v", err)
	}
	if conflicts != 2 {
		t.Errorf("%d updates of the RoleBinding, want 2 (a conflict, then the retry)", conflicts)
	}
	want := []rotate.X509Binding{{Kind: "ClusterRoleBinding", Name: "viewers"}, {Kind: "RoleBinding", Namespace: "app", Name: "readers"}}
	if diff := cmp.Diff(want, res.Output.(map[string]any)["bindings"]); diff != "" {
		t.Errorf("bindings (-want +got):\n%s", diff)
	}
	rb, err := kube.RbacV1().RoleBindings("app").Get(t.Context(), "readers", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]rbacv1.Subject{user(old), user("bob")}, rb.Subjects); diff != "" {
		t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
	}
	crb, err := kube.RbacV1().ClusterRoleBindings().Get(t.Context(), "viewers", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]rbacv1.Subject{user(old), {Kind: rbacv1.GroupKind, Name: "ops"}}, crb.Subjects); diff != "" {
		t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
	}
}
