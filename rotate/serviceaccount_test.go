package rotate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/rotate"
)

// saWorld is a ServiceAccount "app" with a legacy token Secret, a
// TokenRequest token, a Role it is bound to, and workloads that run as it.
type saWorld struct {
	c            *kubetest.Cluster
	f            *kubetest.Fixture
	ns, node     string
	sa           *corev1.ServiceAccount
	legacyToken  string
	boundToken   string
	quarantined  *corev1.Pod // a detached pod running as app, no controller
	webPod       *corev1.Pod // quarantined but still selected by Deployment web
	notes        []json.RawMessage
	deploymentGV map[string]int64 // generation of each Deployment before the rotation
}

func newSAWorld(t *testing.T) *saWorld {
	t.Helper()
	c := controlPlane(t)
	ctx := t.Context()
	f := c.NewFixture(t, "rotate", 0)
	w := &saWorld{c: c, f: f, ns: f.Namespace, node: f.Node}

	sa, err := c.Client.CoreV1().ServiceAccounts(w.ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "app",
			Labels:      map[string]string{"team": "shop"},
			Annotations: map[string]string{"owner": "shop@example.com"},
		},
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "regcred"}},
		AutomountServiceAccountToken: ptr.To(true),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.sa = sa
	w.legacyToken = legacyToken(t, c, w.ns, "app-token", "app")
	w.boundToken = requestToken(t, c, w.ns, "app")
	grantConfigMaps(t, c, w.ns, "app")

	w.deploy(t, "api", "app")
	w.deploy(t, "web", "app")
	w.deploy(t, "other", "default")
	// web's pod contained without --detach: its Deployment still selects it.
	web := waitPods(t, c, w.ns, "app=web", 1)[0]
	w.webPod = w.label(t, &web, map[string]string{action.LabelQuarantine: string(web.UID)})
	// A detached pod: quarantined, selected by nothing.
	p, err := c.Client.CoreV1().Pods(w.ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "suspect", Labels: map[string]string{action.LabelQuarantine: "suspect"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			NodeSelector:       map[string]string{"kubernetes.io/hostname": w.node},
			Containers:         []corev1.Container{{Name: "c", Image: "registry.example/app:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.quarantined = p
	waitPods(t, c, w.ns, action.LabelQuarantine+"=suspect", 1)

	// Both tokens work before the rotation, so that their rejection after
	// it means something.
	for name, tok := range map[string]string{"legacy": w.legacyToken, "bound": w.boundToken} {
		if ok, _ := review(t, c, tok); !ok {
			t.Fatalf("the %s token of app does not authenticate before the rotation", name)
		}
	}
	w.deploymentGV = map[string]int64{}
	for _, name := range []string{"api", "web", "other"} {
		w.deploymentGV[name] = w.deployment(t, name).Generation
	}
	return w
}

func (w *saWorld) env() action.Env {
	return action.Env{
		Kube: w.c.Client, Incident: "inc-rotate", Actor: "test-admin",
		Note: func(data any) error {
			b, err := json.Marshal(data)
			w.notes = append(w.notes, b)
			return err
		},
	}
}

func (w *saWorld) deploy(t *testing.T, name, sa string) {
	t.Helper()
	w.f.Deploy(t, kubetest.Deployment{Name: name, ServiceAccount: sa})
}

func (w *saWorld) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := w.c.Client.AppsV1().Deployments(w.ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (w *saWorld) label(t *testing.T, p *corev1.Pod, labels map[string]string) *corev1.Pod {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	got, err := w.c.Client.CoreV1().Pods(w.ns).Patch(t.Context(), p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (w *saWorld) getSA(t *testing.T) *corev1.ServiceAccount {
	t.Helper()
	sa, err := w.c.Client.CoreV1().ServiceAccounts(w.ns).Get(t.Context(), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// legacyToken creates a legacy token Secret for the ServiceAccount and
// waits for the controller-manager's token controller to fill it.
func legacyToken(t *testing.T, c *kubetest.Cluster, ns, name, sa string) string {
	t.Helper()
	_, err := c.Client.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{corev1.ServiceAccountNameKey: sa}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var token string
	err = kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		s, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		token = string(s.Data[corev1.ServiceAccountTokenKey])
		return token != "", nil
	})
	if err != nil {
		t.Fatalf("waiting for the token controller to fill Secret %s/%s: %v", ns, name, err)
	}
	return token
}

func requestToken(t *testing.T, c *kubetest.Cluster, ns, sa string) string {
	t.Helper()
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// grantConfigMaps binds a Role that reads ConfigMaps to the ServiceAccount,
// by name.
func grantConfigMaps(t *testing.T, c *kubetest.Cluster, ns, sa string) {
	t.Helper()
	ctx := t.Context()
	_, err := c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-configmaps"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// review asks TokenReview about a token.
func review(t *testing.T, c *kubetest.Cluster, token string) (authenticated bool, uid string) {
	t.Helper()
	tr, err := c.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Authenticated, tr.Status.User.UID
}

// waitRejected waits until TokenReview rejects the token: API servers
// cache successful reviews for 10 s.
func waitRejected(t *testing.T, c *kubetest.Cluster, what, token string) {
	t.Helper()
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		ok, _ := review(t, c, token)
		return !ok, nil
	})
	if err != nil {
		t.Errorf("the %s token still authenticates after the rotation: %v", what, err)
	}
}

func rotateSA(t *testing.T, env action.Env, params action.Params) (action.Result, rotate.ServiceAccountOutput) {
	t.Helper()
	res, err := rotate.ServiceAccountAction().Run(t.Context(), env, params)
	if err != nil {
		t.Fatalf("rotate.serviceaccount %v: %v", params, err)
	}
	noTokenIn(t, "the result", res)
	return res, res.Output.(rotate.ServiceAccountOutput)
}

// noTokenIn fails if v, as JSON, holds anything like a JWT.
func noTokenIn(t *testing.T, what string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "eyJ") {
		t.Errorf("%s holds a token: %s", what, b)
	}
}

func TestRotateServiceAccount(t *testing.T) {
	t.Parallel()
	w := newSAWorld(t)
	// kir acts with exactly the rules the action declares.
	env := w.env()
	env.Kube = clientWithRules(t, w.c, w.ns, "kir", rotate.ServiceAccountAction().Spec().Rules)
	res, out := rotateSA(t, env, action.Params{"namespace": w.ns, "name": "app"})

	sa := w.getSA(t)
	want := rotate.ServiceAccountOutput{
		Namespace: w.ns, Name: "app", OldUID: string(w.sa.UID), NewUID: string(sa.UID),
		LegacySecretsDeleted: []string{"app-token"},
		Restarted:            []rotate.Workload{{Kind: "Deployment", Name: "api"}},
		RestartSkipped: []rotate.Workload{{Kind: "Deployment", Name: "web",
			Reason: "a rollout would delete quarantined pod " + w.webPod.Name + "; detach it first (kir contain pod --detach)"}},
		Revoked: true, Confirmed: true,
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if !res.Changed {
		t.Error("Changed = false")
	}
	if sa.UID == w.sa.UID {
		t.Fatalf("ServiceAccount UID unchanged: %s", sa.UID)
	}

	// Every token of the old UID is rejected; a new one works, and the
	// RoleBinding, which names the ServiceAccount, still grants.
	waitRejected(t, w.c, "legacy", w.legacyToken)
	waitRejected(t, w.c, "TokenRequest", w.boundToken)
	if ok, uid := review(t, w.c, requestToken(t, w.c, w.ns, "app")); !ok || uid != string(sa.UID) {
		t.Errorf("a new token: authenticated %v as UID %q, want true as %q", ok, uid, sa.UID)
	}
	cfg, err := w.c.ServiceAccountConfig(t.Context(), w.ns, "app")
	if err != nil {
		t.Fatal(err)
	}
	asApp, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asApp.CoreV1().ConfigMaps(w.ns).List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("the new ServiceAccount lost its RoleBinding's grant: %v", err)
	}
	if _, err := w.c.Client.CoreV1().Secrets(w.ns).Get(t.Context(), "app-token", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("legacy token Secret: got %v, want not found", err)
	}

	// The new ServiceAccount is the old one under a new UID, with kir's
	// record.
	wantAnn := map[string]string{
		"owner":                         "shop@example.com",
		action.AnnotationIncident:       "inc-rotate",
		rotate.AnnotationRotatedBy:      "test-admin",
		rotate.AnnotationRotatedFromUID: string(w.sa.UID),
		rotate.AnnotationRotatedAt:      sa.Annotations[rotate.AnnotationRotatedAt],
	}
	if _, err := time.Parse(time.RFC3339, sa.Annotations[rotate.AnnotationRotatedAt]); err != nil {
		t.Errorf("annotation %s: %v", rotate.AnnotationRotatedAt, err)
	}
	if diff := cmp.Diff(wantAnn, sa.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.sa.Labels, sa.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.sa.ImagePullSecrets, sa.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
	if !ptr.Deref(sa.AutomountServiceAccountToken, false) {
		t.Error("automountServiceAccountToken lost")
	}

	// api is restarted; web, which still selects a quarantined pod, and
	// other, which runs as default, are not.
	if got := w.deployment(t, "api").Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]; got != sa.Annotations[rotate.AnnotationRotatedAt] {
		t.Errorf("Deployment api restartedAt = %q, want the rotation time %q", got, sa.Annotations[rotate.AnnotationRotatedAt])
	}
	for _, name := range []string{"web", "other"} {
		if d := w.deployment(t, name); d.Generation != w.deploymentGV[name] {
			t.Errorf("Deployment %s changed (generation %d, was %d)", name, d.Generation, w.deploymentGV[name])
		}
	}
	// No quarantined pod is touched.
	for _, p := range []*corev1.Pod{w.quarantined, w.webPod} {
		got, err := w.c.Client.CoreV1().Pods(w.ns).Get(t.Context(), p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("quarantined pod %s: %v", p.Name, err)
		}
		if got.UID != p.UID || got.DeletionTimestamp != nil {
			t.Errorf("quarantined pod %s was replaced or is being deleted", p.Name)
		}
	}
	// As the warning says, the kubelet of a quarantined pod that refreshes
	// its token gets one of the new ServiceAccount: TokenRequest checks
	// the pod's ServiceAccount by name only.
	tr, err := w.c.Client.CoreV1().ServiceAccounts(w.ns).CreateToken(t.Context(), "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: w.quarantined.Name, UID: w.quarantined.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := review(t, w.c, tr.Status.Token); !ok {
		t.Error("a token bound to the quarantined pod is rejected: the warning about kubelet refreshes is wrong")
	}
	for _, want := range []string{"quarantined pod " + w.ns + "/suspect runs as ServiceAccount app", "Deployment " + w.ns + "/web runs as ServiceAccount app and was not restarted"} {
		if !containsWarning(res.Warnings, want) {
			t.Errorf("no warning says %q; warnings: %q", want, res.Warnings)
		}
	}
	if len(w.notes) != 1 {
		t.Errorf("noted %d times, want once before the first write", len(w.notes))
	}
	noTokenIn(t, "the notes", w.notes)
	if diff := cmp.Diff([]string{"create TokenRequest app", "delete Secret app-token", "delete ServiceAccount app", "create ServiceAccount app", "patch Deployment api"}, writes(res)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}

	// Again, for the same incident: nothing changes, nothing restarts.
	again, againOut := rotateSA(t, env, action.Params{"namespace": w.ns, "name": "app"})
	if again.Changed || len(again.Writes) > 0 {
		t.Errorf("rotating again: Changed %v, writes %v; want nothing", again.Changed, writes(again))
	}
	if againOut.NewUID != string(sa.UID) || againOut.OldUID != string(w.sa.UID) || !againOut.Revoked {
		t.Errorf("rotating again: %+v", againOut)
	}
	if got := w.getSA(t).UID; got != sa.UID {
		t.Errorf("rotating again replaced the ServiceAccount: UID %s, want %s", got, sa.UID)
	}
}

// A run killed between two writes is run again with the notes of the
// killed attempt, and finishes the rotation.
func TestRotateServiceAccountResumesAfterKill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kill saFailure
		// lostProbe: the old UID is gone before the second attempt, which
		// cannot mint a probe of it.
		lostProbe bool
	}{
		{name: "before the delete", kill: saFailure{delete: true}},
		{name: "between the delete and the create", kill: saFailure{create: true}, lostProbe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newSAWorld(t)
			killed := w.env()
			tt.kill.Interface = w.c.Client
			killed.Kube = tt.kill
			_, err := rotate.ServiceAccountAction().Run(t.Context(), killed, action.Params{"namespace": w.ns, "name": "app"})
			if !errors.Is(err, errKilled) {
				t.Fatalf("first attempt: got %v, want the injected failure", err)
			}
			noTokenIn(t, "the notes", w.notes)

			env := w.env()
			env.Notes = w.notes
			res, out := rotateSA(t, env, action.Params{"namespace": w.ns, "name": "app"})
			sa := w.getSA(t)
			want := rotate.ServiceAccountOutput{
				Namespace: w.ns, Name: "app", OldUID: string(w.sa.UID), NewUID: string(sa.UID),
				LegacySecretsDeleted: []string{"app-token"}, Restarted: out.Restarted, RestartSkipped: out.RestartSkipped,
				Revoked: true, Confirmed: !tt.lostProbe,
			}
			if diff := cmp.Diff(want, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if got := containsWarning(res.Warnings, "the probe token that attempt minted is lost"); got != tt.lostProbe {
				t.Errorf("warning about the lost probe: %v, want %v; warnings: %q", got, tt.lostProbe, res.Warnings)
			}
			if sa.UID == w.sa.UID || sa.Annotations[rotate.AnnotationRotatedFromUID] != string(w.sa.UID) ||
				sa.Labels["team"] != "shop" || len(sa.ImagePullSecrets) != 1 {
				t.Errorf("the ServiceAccount is not the old one's successor: UID %s, %+v", sa.UID, sa.ObjectMeta)
			}
			waitRejected(t, w.c, "TokenRequest", w.boundToken)
			if got := w.deployment(t, "api").Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]; got != sa.Annotations[rotate.AnnotationRotatedAt] {
				t.Errorf("Deployment api restartedAt = %q, want %q", got, sa.Annotations[rotate.AnnotationRotatedAt])
			}
		})
	}
}

// Something (the ServiceAccount controller, for "default") recreates the
// ServiceAccount between kir's delete and create: kir makes that one the
// successor.
func TestRotateServiceAccountRecreatedMeanwhile(t *testing.T) {
	t.Parallel()
	w := newSAWorld(t)
	env := w.env()
	env.Kube = saFailure{Interface: w.c.Client, race: true}
	res, out := rotateSA(t, env, action.Params{"namespace": w.ns, "name": "app"})
	sa := w.getSA(t)
	if !out.Revoked || !out.Confirmed || out.NewUID != string(sa.UID) || sa.UID == w.sa.UID {
		t.Errorf("output %+v, ServiceAccount UID %s; want revoked and confirmed, with a new UID", out, sa.UID)
	}
	if sa.Annotations[rotate.AnnotationRotatedFromUID] != string(w.sa.UID) || sa.Labels["team"] != "shop" || len(sa.ImagePullSecrets) != 1 {
		t.Errorf("the ServiceAccount is not the old one's successor: %+v", sa.ObjectMeta)
	}
	if diff := cmp.Diff([]string{"create TokenRequest app", "delete Secret app-token", "delete ServiceAccount app", "create ServiceAccount app", "update ServiceAccount app", "patch Deployment api"}, writes(res)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

var errKilled = errors.New("killed (injected)")

// saFailure injects failures into ServiceAccount writes: as if kir were
// killed just before a delete or a create, or as if something else created
// the ServiceAccount just before kir does.
type saFailure struct {
	kubernetes.Interface
	delete, create, race bool
}

func (f saFailure) CoreV1() corev1client.CoreV1Interface {
	return saFailureCore{f.Interface.CoreV1(), f}
}

type saFailureCore struct {
	corev1client.CoreV1Interface
	f saFailure
}

func (c saFailureCore) ServiceAccounts(ns string) corev1client.ServiceAccountInterface {
	return saFailureSAs{c.CoreV1Interface.ServiceAccounts(ns), c.f}
}

type saFailureSAs struct {
	corev1client.ServiceAccountInterface
	f saFailure
}

func (s saFailureSAs) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	if s.f.delete {
		return errKilled
	}
	return s.ServiceAccountInterface.Delete(ctx, name, opts)
}

func (s saFailureSAs) Create(ctx context.Context, sa *corev1.ServiceAccount, opts metav1.CreateOptions) (*corev1.ServiceAccount, error) {
	switch {
	case s.f.create:
		return nil, errKilled
	case s.f.race:
		plain := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.Name}}
		if _, err := s.ServiceAccountInterface.Create(ctx, plain, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	return s.ServiceAccountInterface.Create(ctx, sa, opts)
}

func TestRotateServiceAccountDryRun(t *testing.T) {
	t.Parallel()
	for _, mode := range []action.DryRun{action.DryRunServer, action.DryRunClient} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			w := newSAWorld(t)
			env := w.env()
			env.DryRun = mode
			res, out := rotateSA(t, env, action.Params{"namespace": w.ns, "name": "app"})
			if !res.Changed || out.Revoked || out.Confirmed || out.NewUID != "" {
				t.Errorf("Changed %v, output %+v; want changed, not revoked, no new UID", res.Changed, out)
			}
			if diff := cmp.Diff([]string{"delete Secret app-token", "delete ServiceAccount app", "create ServiceAccount app", "patch Deployment api"}, writes(res)); diff != "" {
				t.Errorf("writes (-want +got), no probe token in a dry run:\n%s", diff)
			}
			for _, wr := range res.Writes {
				if wr.Done != (mode == action.DryRunServer) || wr.Error != "" {
					t.Errorf("write %s %s %s: done %v, error %q", wr.Verb, wr.Kind, wr.Name, wr.Done, wr.Error)
				}
			}
			if len(w.notes) != 0 {
				t.Errorf("a dry run noted %d times", len(w.notes))
			}
			if sa := w.getSA(t); sa.UID != w.sa.UID {
				t.Error("a dry run replaced the ServiceAccount")
			}
			if _, err := w.c.Client.CoreV1().Secrets(w.ns).Get(t.Context(), "app-token", metav1.GetOptions{}); err != nil {
				t.Errorf("a dry run deleted the legacy token Secret: %v", err)
			}
			if d := w.deployment(t, "api"); d.Generation != w.deploymentGV["api"] {
				t.Error("a dry run restarted Deployment api")
			}
			if ok, _ := review(t, w.c, w.boundToken); !ok {
				t.Error("a dry run revoked the token")
			}
		})
	}
}

func TestRotateServiceAccountNotFound(t *testing.T) {
	t.Parallel()
	c := controlPlane(t)
	ns := namespace(t, c)
	_, err := rotate.ServiceAccountAction().Run(t.Context(), action.Env{Kube: c.Client}, action.Params{"namespace": ns, "name": "ghost"})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), ns+"/ghost") {
		t.Errorf("got %v, want a not-found error naming %s/ghost", err, ns)
	}
}

func TestServiceAccountParamsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		params  action.Params
		wantErr []string
	}{
		{name: "valid", params: action.Params{"namespace": "shop", "name": "app", "confirmTimeout": "30s", "noRestart": true}},
		{name: "missing both", params: action.Params{}, wantErr: []string{`"namespace" is required`, `"name" is required`}},
		{name: "bad names and timeout, all reported", params: action.Params{"namespace": "Shop", "name": "a/b", "confirmTimeout": "-1s"},
			wantErr: []string{`invalid namespace "Shop"`, `invalid ServiceAccount name "a/b"`, "confirmTimeout must not be negative"}},
		{name: "unknown parameter", params: action.Params{"namespace": "shop", "name": "app", "restart": false}, wantErr: []string{`unknown parameter "restart"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := rotate.ServiceAccountAction().Validate(tt.params)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%v) succeeded", tt.params)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func writes(res action.Result) []string {
	out := []string{}
	for _, w := range res.Writes {
		out = append(out, w.Verb+" "+w.Kind+" "+w.Name)
	}
	return out
}

func containsWarning(warnings []string, s string) bool {
	for _, w := range warnings {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}
