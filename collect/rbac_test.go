package collect_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/collect"
	"kir.dev/kir/internal/kube"
	"kir.dev/kir/internal/kubetest"
)

// TestRulesSuffice collects with a ServiceAccount bound to nothing but the
// rules collect declares: no part may be forbidden. Without
// PullSecretRules, PullSecrets falls back to the default keychain with a
// note; without CheckpointRules, a checkpoint is a failure.
func TestRulesSuffice(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	w := newWorld(t, "rbac")
	pod := w.webApp(t)
	tests := []struct {
		name      string
		rules     []rbacv1.PolicyRule
		o         collect.Options
		wantError string
		wantNote  string
	}{
		{"every part", concat(collect.Rules(), collect.PullSecretRules(), collect.CheckpointRules()),
			collect.Options{Images: true, Insecure: true, PullSecrets: true, Checkpoint: true}, "", "registry credentials: the pod's imagePullSecrets web-pull"},
		{"base rules", collect.Rules(), collect.Options{Images: true, Insecure: true}, "", ""},
		{"no right to secrets", collect.Rules(), collect.Options{Images: true, Insecure: true, PullSecrets: true}, "", "imagePullSecrets could not be used"},
		{"no right to checkpoint", collect.Rules(), collect.Options{Checkpoint: true}, "forbidden", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := "collector-" + string(rune('a'+i))
			saClient := asServiceAccount(t, w, sa, tt.rules)
			tt.o.Sink = newDirSink(t.TempDir())
			res, err := collect.Pod(ctx, saClient, w.ns, pod.Name, tt.o)
			switch {
			case tt.wantError == "" && err != nil:
				t.Errorf("%v\nnotes:\n%s", err, strings.Join(res.Notes, "\n"))
			case tt.wantError != "" && (err == nil || !strings.Contains(err.Error(), tt.wantError)):
				t.Errorf("err %v, want one containing %q", err, tt.wantError)
			}
			if tt.wantNote != "" {
				wantNote(t, res, tt.wantNote)
			}
			if len(res.Files) < 20 {
				t.Errorf("only %d files", len(res.Files))
			}
		})
	}
}

// asServiceAccount returns a client acting as a new ServiceAccount of w
// bound, cluster-wide, to rules alone, once RBAC lets it read the pod.
func asServiceAccount(t *testing.T, w *world, name string, rules []rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	c := cluster.Client
	role := w.ns + "-" + name
	create(t,
		func(ctx context.Context) error {
			return ignoreObject(c.CoreV1().ServiceAccounts(w.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}, Rules: rules}, metav1.CreateOptions{}))
		},
		func(ctx context.Context) error {
			return ignoreObject(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: role},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: w.ns, Name: name}},
			}, metav1.CreateOptions{}))
		},
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.RbacV1().ClusterRoleBindings().Delete(ctx, role, metav1.DeleteOptions{})
		_ = c.RbacV1().ClusterRoles().Delete(ctx, role, metav1.DeleteOptions{})
	})
	cfg, err := cluster.ServiceAccountConfig(ctx, w.ns, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Wrap(kube.AuditIDTransport)
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = kubetest.Eventually(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
		_, err := kc.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{Limit: 1})
		if apierrors.IsForbidden(err) {
			return false, nil // the authorizer has not seen the binding yet
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("the binding never took effect: %v", err)
	}
	return kc
}

func concat(lists ...[]rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
