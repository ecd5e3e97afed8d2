package rotate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/rotate"
)

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	esGVR  = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
	ssGVR  = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "secretstores"}
)

// The pod reaches credentials every way PlanPod knows, and the plan lists
// each once, with every way, in a stable order.
func TestPlanPod(t *testing.T) {
	c := controlPlane(t)
	ctx := t.Context()
	ns := namespace(t, c)
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/web"}},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-pull"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secretEnv := func(name, secret, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
	}
	pod, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{
			"vault.hashicorp.com/agent-inject":                  "true",
			"vault.hashicorp.com/role":                          "web",
			"vault.hashicorp.com/agent-inject-secret-db":        "secret/data/app/db",
			"vault.hashicorp.com/agent-inject-file-db":          "db.env",
			"vault.hashicorp.com/agent-inject-secret-dbcreds":   "database/creds/readonly",
			"vault.hashicorp.com/secret-volume-path-dbcreds":    "/creds",
			"vault.hashicorp.com/agent-inject-template-dbcreds": "{{ with secret \"database/creds/readonly\" }}{{ .Data.password }}{{ end }}",
		}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "regcred"}},
			Volumes: []corev1.Volume{
				{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db-creds"}}},
				{Name: "bundle", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls-certs"}}},
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "vault-token", ExpirationSeconds: ptr.To[int64](3600)}},
				}}}},
			},
			InitContainers: []corev1.Container{{Name: "setup", Image: "registry.example/setup:1", Env: []corev1.EnvVar{secretEnv("TOKEN", "setup-token", "token")}}},
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/web:1",
				Env: []corev1.EnvVar{secretEnv("DB_PASSWORD", "db-creds", "password"), {Name: "PLAIN", Value: "x"}},
				EnvFrom: []corev1.EnvFromSource{
					{Prefix: "API_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "api-key"}}},
					{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
				},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The ServiceAccount admission plugin adds the token volume.
	var tokenVolume string
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") {
			tokenVolume = v.Name
		}
	}
	if tokenVolume == "" {
		t.Fatalf("no kube-api-access volume in %+v", pod.Spec.Volumes)
	}

	sa := rotate.Item{Kind: rotate.ItemServiceAccount, Ref: "serviceaccount://" + ns + "/web",
		Via:     []string{"volume bundle (token for audience vault)", "volume " + tokenVolume + " (token)"},
		Command: "kir rotate serviceaccount " + ns + "/web",
		Note:    "its token also unlocks the cloud identity eks.amazonaws.com/role-arn=arn:aws:iam::1:role/web: credentials already issued for it outlive the rotation"}
	const rotateAtSource = "rotate the credential it holds where it was issued, then update the Secret"
	secret := func(name, note string, via ...string) rotate.Item {
		return rotate.Item{Kind: rotate.ItemSecret, Ref: "secret://" + ns + "/" + name, Via: via, Note: note}
	}
	const vaultRole = "read with Vault role web, which the pod's ServiceAccount token logs in to: revoke the Vault tokens issued to it"
	agentItems := []rotate.Item{
		{Kind: rotate.ItemVault, Ref: "vault://database/creds/readonly", Via: []string{"vault agent file /creds/dbcreds"},
			Note: "not a KV version 2 path (a dynamic secret or KV version 1): revoke its leases or rotate it in Vault; " + vaultRole},
		{Kind: rotate.ItemVault, Ref: "vault://secret/app/db", Via: []string{"vault agent file /vault/secrets/db.env"},
			Command: "kir rotate secret vault://secret/app/db", Note: vaultRole},
	}

	t.Run("without the ExternalSecret API", func(t *testing.T) {
		if _, err := dyn.Resource(crdGVR).Get(ctx, "externalsecrets.external-secrets.io", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Skipf("the ExternalSecret API is installed (left by an earlier run?): %v", err)
		}
		got, err := rotate.PlanPod(ctx, c.Client, dyn, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		want := &rotate.Plan{Namespace: ns, Pod: "web", ServiceAccount: "web", AutomountToken: true, Items: append([]rotate.Item{
			sa,
			secret("api-key", rotateAtSource, "envFrom API_* (container app)"),
			secret("db-creds", rotateAtSource, "volume creds", "env DB_PASSWORD (container app)"),
			secret("regcred", rotateAtSource, "imagePullSecrets"),
			secret("sa-pull", rotateAtSource, "imagePullSecrets of ServiceAccount web"),
			secret("setup-token", rotateAtSource, "env TOKEN (init container setup)"),
			secret("tls-certs", rotateAtSource, "volume bundle (projected)"),
		}, agentItems...)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("plan (-want +got):\n%s", diff)
		}
	})

	t.Run("with ExternalSecrets", func(t *testing.T) {
		installESO(t, c, dyn)
		create := func(gvr schema.GroupVersionResource, kind, name string, spec map[string]any) {
			t.Helper()
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "external-secrets.io/v1", "kind": kind,
				"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec,
			}}
			if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		create(ssGVR, "SecretStore", "vault-backend", map[string]any{"provider": map[string]any{"vault": map[string]any{
			"server": "https://vault.example:8200", "path": "secret", "version": "v2"}}})
		create(ssGVR, "SecretStore", "aws", map[string]any{"provider": map[string]any{"aws": map[string]any{
			"service": "SecretsManager", "region": "eu-west-1"}}})
		create(ssGVR, "SecretStore", "gcp", map[string]any{"provider": map[string]any{"gcpsm": map[string]any{"projectID": "p"}}})
		create(esGVR, "ExternalSecret", "db", map[string]any{
			"secretStoreRef": map[string]any{"name": "vault-backend", "kind": "SecretStore"},
			"target":         map[string]any{"name": "db-creds"},
			"data":           []any{map[string]any{"secretKey": "password", "remoteRef": map[string]any{"key": "app/db", "property": "password"}}},
			"dataFrom":       []any{map[string]any{"extract": map[string]any{"key": "app/common"}}},
		})
		// No target name: the operator fills a Secret of its own name.
		create(esGVR, "ExternalSecret", "api-key", map[string]any{
			"secretStoreRef": map[string]any{"name": "aws"},
			"data":           []any{map[string]any{"secretKey": "key", "remoteRef": map[string]any{"key": "prod/api-key"}}},
		})
		create(esGVR, "ExternalSecret", "tls", map[string]any{
			"secretStoreRef": map[string]any{"name": "gcp"},
			"target":         map[string]any{"name": "tls-certs"},
			"data":           []any{map[string]any{"secretKey": "tls.crt", "remoteRef": map[string]any{"key": "web-tls"}}},
		})
		create(esGVR, "ExternalSecret", "setup", map[string]any{
			"target": map[string]any{"name": "setup-token"},
			"dataFrom": []any{
				map[string]any{"sourceRef": map[string]any{"generatorRef": map[string]any{"kind": "Password", "name": "pw"}}},
				map[string]any{"find": map[string]any{"name": map[string]any{"regexp": "^setup-"}}, "sourceRef": map[string]any{"storeRef": map[string]any{"name": "vault-backend"}}},
			},
		})
		create(esGVR, "ExternalSecret", "unrelated", map[string]any{
			"secretStoreRef": map[string]any{"name": "vault-backend"},
			"target":         map[string]any{"name": "not-the-pods"},
			"data":           []any{map[string]any{"secretKey": "x", "remoteRef": map[string]any{"key": "other/x"}}},
		})

		// kir acts with exactly the rules PlanPod declares.
		kube, asKir := clientsWithRules(t, c, ns, "kir", rotate.PlanRules())
		got, err := rotate.PlanPod(ctx, kube, asKir, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		filled := func(es string) string {
			return "filled by ExternalSecret " + es + " from its remote secrets: rotate those and the operator refreshes it"
		}
		want := &rotate.Plan{Namespace: ns, Pod: "web", ServiceAccount: "web", AutomountToken: true, Items: []rotate.Item{
			sa,
			secret("api-key", filled("api-key"), "envFrom API_* (container app)"),
			secret("db-creds", filled("db"), "volume creds", "env DB_PASSWORD (container app)"),
			secret("regcred", rotateAtSource, "imagePullSecrets"),
			secret("sa-pull", rotateAtSource, "imagePullSecrets of ServiceAccount web"),
			secret("setup-token", filled("setup"), "env TOKEN (init container setup)"),
			secret("tls-certs", filled("tls"), "volume bundle (projected)"),
			agentItems[0],
			{Kind: rotate.ItemVault, Ref: "vault://secret/app/common", Via: []string{"ExternalSecret db (Secret db-creds)"},
				Command: "kir rotate secret vault://secret/app/common"},
			agentItems[1],
			{Kind: rotate.ItemVault, Ref: "vault://secret/app/db#password", Via: []string{"ExternalSecret db (Secret db-creds)"},
				Command: "kir rotate secret vault://secret/app/db#password"},
			{Kind: rotate.ItemSecretsManager, Ref: "aws-sm://prod/api-key", Via: []string{"ExternalSecret api-key (Secret api-key)"},
				Command: "kir rotate secret aws-sm://prod/api-key"},
			{Kind: rotate.ItemExternalSecret, Ref: "external-secret://" + ns + "/tls#web-tls", Via: []string{"ExternalSecret tls (Secret tls-certs)"},
				Note: "its store SecretStore gcp uses provider gcpsm, which kir does not rotate"},
		}, Warnings: []string{
			"ExternalSecret " + ns + "/setup generates values (dataFrom generatorRef): kir cannot rotate them; delete the Secret setup-token so that the operator generates new ones",
			"ExternalSecret " + ns + "/setup finds its remote secrets by name or tag (dataFrom find): kir cannot list which; look them up in the store",
		}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("plan (-want +got):\n%s", diff)
		}

		// Without the right to list them, the plan says what it misses.
		kube, asKir = clientsWithRules(t, c, ns, "kir-pods-only", rotate.PlanRules()[:1])
		got, err = rotate.PlanPod(ctx, kube, asKir, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		wantWarnings := []string{"listing ExternalSecrets in " + ns + " is forbidden: the plan misses the remote secrets they fill the pod's Secrets from"}
		if diff := cmp.Diff(wantWarnings, got.Warnings); diff != "" {
			t.Errorf("warnings without the ExternalSecret rules (-want +got):\n%s", diff)
		}
	})

	t.Run("missing pod", func(t *testing.T) {
		_, err := rotate.PlanPod(ctx, c.Client, nil, ns, "ghost")
		if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), ns+"/ghost") {
			t.Errorf("got %v, want a not-found error naming %s/ghost", err, ns)
		}
	})
}

func clientsWithRules(t *testing.T, c *kubetest.Cluster, ns, name string, rules []rbacv1.PolicyRule) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	cfg := configWithRules(t, c, ns, name, rules)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube, dyn
}

func TestPlanRules(t *testing.T) {
	t.Parallel()
	for _, r := range rotate.PlanRules() {
		for _, res := range r.Resources {
			if res == "secrets" {
				t.Errorf("PlanRules grants %v on secrets: the plan must never read one", r.Verbs)
			}
		}
	}
}

// installESO installs the External Secrets Operator's ExternalSecret and
// SecretStore APIs (v1, any fields), and removes them when the test ends.
func installESO(t *testing.T, c *kubetest.Cluster, dyn dynamic.Interface) {
	t.Helper()
	ctx := t.Context()
	for _, kind := range []string{"ExternalSecret", "SecretStore"} {
		plural := strings.ToLower(kind) + "s"
		name := plural + ".external-secrets.io"
		crd := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": name},
			"spec": map[string]any{
				"group": "external-secrets.io", "scope": "Namespaced",
				"names": map[string]any{"plural": plural, "singular": strings.ToLower(kind), "kind": kind, "listKind": kind + "List"},
				"versions": []any{map[string]any{
					"name": "v1", "served": true, "storage": true,
					"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
				}},
			},
		}}
		if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// The test's context is done by now.
			ctx := context.Background()
			if err := dyn.Resource(crdGVR).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("removing CRD %s: %v", name, err)
			}
			// Gone before the next test (or -count) looks for it.
			err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
				_, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
			if err != nil {
				t.Errorf("waiting for CRD %s to be removed: %v", name, err)
			}
		})
		gvr := schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: plural}
		err := kubetest.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
			return err == nil, nil
		})
		if err != nil {
			t.Fatalf("waiting for CRD %s to be served: %v", name, err)
		}
	}
}
