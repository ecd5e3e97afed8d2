package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"kir.dev/kir/internal/kubetest"
)

// rotatePolicy lets a Vault token rotate (and roll back) secrets under
// secret/auth/.
const rotatePolicy = `
path "secret/data/auth/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/auth/*" { capabilities = ["read"] }
path "secret/config" { capabilities = ["read"] }
`

// kir logs in to Vault with AppRole, and with Kubernetes auth — Vault
// checking kir's ServiceAccount token against the real API server with a
// TokenReview — instead of a VAULT_TOKEN.
func TestVaultAuthMethods(t *testing.T) {
	t.Parallel()
	v, vc := vaultServer(t)
	ctx := t.Context()
	if err := vc.Sys().PutPolicyWithContext(ctx, "kir-rotate", rotatePolicy); err != nil {
		t.Fatal(err)
	}
	rotateWith := func(t *testing.T, env []string, path string) {
		t.Helper()
		if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"password": "before"}); err != nil {
			t.Fatal(err)
		}
		kubetest.Kir{Env: env}.MustRun(t, "rotate", "secret", "vault://secret/"+path+"#password", "--state-dir", t.TempDir())
		if ver, data := vaultData(t, vc, "secret", path); ver != 2 || data["password"] == "before" {
			t.Fatalf("not rotated: version %d", ver)
		}
	}
	noToken := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN="}

	t.Run("approle", func(t *testing.T) {
		if err := vc.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vaultAuthInput); err != nil {
			t.Fatal(err)
		}
		if _, err := vc.Logical().WriteWithContext(ctx, "auth/approle/role/kir", map[string]any{"token_policies": "kir-rotate"}); err != nil {
			t.Fatal(err)
		}
		rid, err := vc.Logical().ReadWithContext(ctx, "auth/approle/role/kir/role-id")
		if err != nil {
			t.Fatal(err)
		}
		sid, err := vc.Logical().WriteWithContext(ctx, "auth/approle/role/kir/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "secret-id")
		if err := os.WriteFile(file, []byte(sid.Data["secret_id"].(string)), 0o600); err != nil {
			t.Fatal(err)
		}
		rotateWith(t, append(noToken, "KIR_VAULT_AUTH=approle", "KIR_VAULT_ROLE_ID="+rid.Data["role_id"].(string), "KIR_VAULT_SECRET_ID_FILE="+file), "auth/approle")
		// A wrong secret id is refused by Vault, and kir says so.
		if err := os.WriteFile(file, []byte("00000000-0000-0000-0000-000000000000"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := kubetest.Kir{Env: append(noToken, "KIR_VAULT_AUTH=approle", "KIR_VAULT_ROLE_ID="+rid.Data["role_id"].(string), "KIR_VAULT_SECRET_ID_FILE="+file)}.Run(t,
			"rotate", "secret", "vault://secret/auth/approle#password", "--state-dir", t.TempDir())
		if r.Code == 0 || !strings.Contains(r.Stderr, "logging in to Vault (approle)") {
			t.Errorf("a wrong secret id: exit %d:\n%s", r.Code, r.Stderr)
		}
	})

	t.Run("kubernetes", func(t *testing.T) {
		c := cluster(t)
		ns := newFixture(t, 0).Namespace
		// Vault reviews tokens as a ServiceAccount allowed to.
		for _, name := range []string{"vault-reviewer", "kir"} {
			if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-vault-reviewer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "vault-reviewer"}},
		}
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Client.RbacV1().ClusterRoleBindings().Delete(t.Context(), binding.Name, metav1.DeleteOptions{})
		})
		token := func(name string) string {
			secs := int64(3600)
			tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tr.Status.Token
		}
		if err := vc.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultKubeAuthInput); err != nil {
			t.Fatal(err)
		}
		if _, err := vc.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
			"kubernetes_host": c.Config.Host, "kubernetes_ca_cert": string(c.Config.CAData),
			"token_reviewer_jwt": token("vault-reviewer"), "disable_local_ca_jwt": true,
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := vc.Logical().WriteWithContext(ctx, "auth/kubernetes/role/kir", map[string]any{
			"bound_service_account_names": "kir", "bound_service_account_namespaces": ns, "token_policies": "kir-rotate",
		}); err != nil {
			t.Fatal(err)
		}
		jwt := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(jwt, []byte(token("kir")), 0o600); err != nil {
			t.Fatal(err)
		}
		rotateWith(t, append(noToken, "KIR_VAULT_AUTH=kubernetes", "KIR_VAULT_ROLE=kir", "KIR_VAULT_JWT_FILE="+jwt), "auth/kubernetes")
	})
}

var (
	vaultAuthInput     = vault.EnableAuthOptions{Type: "approle"}
	vaultKubeAuthInput = vault.EnableAuthOptions{Type: "kubernetes"}
)
