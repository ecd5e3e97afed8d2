package rotate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// The kinds of Item, in the order a Plan lists them.
const (
	ItemServiceAccount = "serviceaccount"
	ItemSecret         = "secret"
	ItemVault          = "vault"
	ItemSecretsManager = "aws-sm"
	// ItemExternalSecret is a remote key of an ExternalSecret whose store
	// kir cannot place (an unknown provider, or a store it cannot read).
	ItemExternalSecret = "external-secret"
)

var itemRank = map[string]int{ItemServiceAccount: 0, ItemSecret: 1, ItemVault: 2, ItemSecretsManager: 3, ItemExternalSecret: 4}

// Plan lists the credentials a pod could read, and how to rotate each:
// after a compromise, all of them are burned.
type Plan struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// ServiceAccount is the pod's ServiceAccount.
	ServiceAccount string `json:"serviceAccount"`
	// AutomountToken says whether the pod's spec (or, when it says
	// nothing, its ServiceAccount) has a token mounted automatically.
	AutomountToken bool `json:"automountToken"`
	// Items are the credentials, by kind and then reference.
	Items []Item `json:"items"`
	// Warnings say what the plan may miss.
	Warnings []string `json:"warnings,omitempty"`
}

// Item is one credential the pod could read.
type Item struct {
	// Kind is one of the Item* constants.
	Kind string `json:"kind"`
	// Ref names it: secret://NS/NAME, serviceaccount://NS/NAME,
	// vault://MOUNT/PATH[#KEY], aws-sm://NAME[#KEY], or
	// external-secret://NS/EXTERNALSECRET#REMOTEKEY.
	Ref string `json:"ref"`
	// Via says how the pod reaches it, e.g. "volume creds" or
	// "env DB_PASSWORD (container app)", in the order of the pod spec.
	Via []string `json:"via"`
	// Command is the kir command that rotates it; empty when kir cannot.
	Command string `json:"command,omitempty"`
	// Note says what else the responder must know, such as how to rotate
	// it without kir.
	Note string `json:"note,omitempty"`
}

// PlanRules are the RBAC rules PlanPod needs. It never reads a Secret.
func PlanRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		kubeRule("", []string{"pods", "serviceaccounts"}, "get"),
		kubeRule("external-secrets.io", []string{"externalsecrets"}, "list"),
		kubeRule("external-secrets.io", []string{"secretstores", "clustersecretstores"}, "get"),
	}
}

// Vault Agent injector annotations.
const (
	vaultAnnotation       = "vault.hashicorp.com/"
	vaultInjectSecret     = vaultAnnotation + "agent-inject-secret-"
	vaultInjectFile       = vaultAnnotation + "agent-inject-file-"
	vaultVolumePath       = vaultAnnotation + "secret-volume-path"
	vaultRole             = vaultAnnotation + "role"
	vaultDefaultMountPath = "/vault/secrets"
)

// Annotations by which a ServiceAccount's token unlocks a cloud identity.
var workloadIdentity = []string{
	"eks.amazonaws.com/role-arn",
	"iam.gke.io/gcp-service-account",
	"azure.workload.identity/client-id",
}

// PlanPod lists the credentials the pod namespace/name could read: the
// Secrets its spec mounts or references (volumes, projected volumes, env,
// envFrom, imagePullSecrets of the pod and its ServiceAccount), its
// ServiceAccount, the Vault secrets the Vault Agent injector writes into
// it, and the remote secrets of the ExternalSecrets that fill its Secrets.
// dyn may be nil: ExternalSecrets are then not looked up; a cluster
// without the ExternalSecret API is no error.
//
// It reads the pod spec and the ServiceAccount only: no Secret is ever
// read, so no value can leak into the plan.
func PlanPod(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, namespace, name string) (*Plan, error) {
	pod, err := kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("planning the rotation for pod %s/%s: %w", namespace, name, err)
	}
	b := &planBuilder{
		plan:   Plan{Namespace: namespace, Pod: name, ServiceAccount: serviceAccountOf(&pod.Spec), Items: []Item{}},
		byRef:  map[string]int{},
		secret: map[string]bool{},
	}
	sa, err := kube.CoreV1().ServiceAccounts(namespace).Get(ctx, b.plan.ServiceAccount, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sa = nil
		b.warn("ServiceAccount %s/%s no longer exists: its image pull secrets and automount setting are unknown", namespace, b.plan.ServiceAccount)
	case err != nil:
		return nil, fmt.Errorf("planning the rotation for pod %s/%s: getting its ServiceAccount %s: %w", namespace, name, b.plan.ServiceAccount, err)
	}
	b.serviceAccount(pod, sa)
	b.secrets(pod, sa)
	b.vault(pod)
	if dyn != nil {
		if err := b.externalSecrets(ctx, dyn); err != nil {
			return nil, fmt.Errorf("planning the rotation for pod %s/%s: %w", namespace, name, err)
		}
	}
	slices.SortStableFunc(b.plan.Items, func(x, y Item) int {
		return cmp.Or(cmp.Compare(itemRank[x.Kind], itemRank[y.Kind]), strings.Compare(x.Ref, y.Ref))
	})
	return &b.plan, nil
}

type planBuilder struct {
	plan   Plan
	byRef  map[string]int  // index in plan.Items
	secret map[string]bool // the names of the pod's Secrets
}

func (b *planBuilder) warn(format string, args ...any) {
	b.plan.Warnings = append(b.plan.Warnings, fmt.Sprintf(format, args...))
}

// add records that the pod reaches the credential ref via via, once.
func (b *planBuilder) add(kind, ref, via string) *Item {
	i, ok := b.byRef[ref]
	if !ok {
		i = len(b.plan.Items)
		b.byRef[ref] = i
		b.plan.Items = append(b.plan.Items, Item{Kind: kind, Ref: ref, Via: []string{}})
	}
	it := &b.plan.Items[i]
	if via != "" && !slices.Contains(it.Via, via) {
		it.Via = append(it.Via, via)
	}
	return it
}

func (b *planBuilder) serviceAccount(pod *corev1.Pod, sa *corev1.ServiceAccount) {
	ns, name := pod.Namespace, b.plan.ServiceAccount
	automount := true
	if sa != nil && sa.AutomountServiceAccountToken != nil {
		automount = *sa.AutomountServiceAccountToken
	}
	if pod.Spec.AutomountServiceAccountToken != nil {
		automount = *pod.Spec.AutomountServiceAccountToken
	}
	b.plan.AutomountToken = automount
	it := b.add(ItemServiceAccount, "serviceaccount://"+ns+"/"+name, "")
	it.Command = "kir rotate serviceaccount " + ns + "/" + name
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if t := s.ServiceAccountToken; t != nil {
				via := "volume " + v.Name + " (token)"
				if t.Audience != "" {
					via = "volume " + v.Name + " (token for audience " + t.Audience + ")"
				}
				b.add(ItemServiceAccount, it.Ref, via)
			}
		}
	}
	it = &b.plan.Items[b.byRef[it.Ref]]
	var notes []string
	if len(it.Via) == 0 {
		notes = append(notes, "no token of it is mounted in the pod")
	}
	if sa != nil {
		for _, k := range workloadIdentity {
			if v := sa.Annotations[k]; v != "" {
				notes = append(notes, fmt.Sprintf("its token also unlocks the cloud identity %s=%s: credentials already issued for it outlive the rotation", k, v))
			}
		}
	}
	it.Note = strings.Join(notes, "; ")
}

func (b *planBuilder) secrets(pod *corev1.Pod, sa *corev1.ServiceAccount) {
	ns := pod.Namespace
	add := func(name, via string) {
		if name == "" {
			return
		}
		b.secret[name] = true
		it := b.add(ItemSecret, "secret://"+ns+"/"+name, via)
		it.Note = "rotate the credential it holds where it was issued, then update the Secret"
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil:
			add(v.Secret.SecretName, "volume "+v.Name)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					add(s.Secret.Name, "volume "+v.Name+" (projected)")
				}
			}
		}
	}
	for c := range containers(pod) {
		for _, e := range c.envFrom {
			if e.SecretRef != nil {
				via := "envFrom (" + c.what + ")"
				if e.Prefix != "" {
					via = "envFrom " + e.Prefix + "* (" + c.what + ")"
				}
				add(e.SecretRef.Name, via)
			}
		}
		for _, e := range c.env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add(e.ValueFrom.SecretKeyRef.Name, "env "+e.Name+" ("+c.what+")")
			}
		}
	}
	for _, s := range pod.Spec.ImagePullSecrets {
		add(s.Name, "imagePullSecrets")
	}
	if sa != nil {
		for _, s := range sa.ImagePullSecrets {
			add(s.Name, "imagePullSecrets of ServiceAccount "+sa.Name)
		}
	}
}

// container is a container of any kind, named for Via.
type container struct {
	what    string // "container app", "init container setup", …
	env     []corev1.EnvVar
	envFrom []corev1.EnvFromSource
}

// containers yields the pod's init, regular and ephemeral containers.
func containers(pod *corev1.Pod) func(yield func(container) bool) {
	return func(yield func(container) bool) {
		for _, c := range pod.Spec.InitContainers {
			if !yield(container{"init container " + c.Name, c.Env, c.EnvFrom}) {
				return
			}
		}
		for _, c := range pod.Spec.Containers {
			if !yield(container{"container " + c.Name, c.Env, c.EnvFrom}) {
				return
			}
		}
		for _, c := range pod.Spec.EphemeralContainers {
			if !yield(container{"ephemeral container " + c.Name, c.Env, c.EnvFrom}) {
				return
			}
		}
	}
}

// vault lists the secrets the Vault Agent injector renders into the pod,
// from its annotations.
func (b *planBuilder) vault(pod *corev1.Pod) {
	ann := pod.Annotations
	var names []string
	for k := range ann {
		if name, ok := strings.CutPrefix(k, vaultInjectSecret); ok && name != "" && strings.Trim(ann[k], "/") != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		dir := cmp.Or(ann[vaultVolumePath+"-"+name], ann[vaultVolumePath], vaultDefaultMountPath)
		file := cmp.Or(ann[vaultInjectFile+name], name)
		via := "vault agent file " + strings.TrimSuffix(dir, "/") + "/" + file
		ref, kv2 := vaultAgentRef(ann[vaultInjectSecret+name])
		it := b.add(ItemVault, ref, via)
		var notes []string
		if kv2 {
			it.Command = rotateSecretCommand(ref)
		} else {
			notes = append(notes, "not a KV version 2 path (a dynamic secret or KV version 1): revoke its leases or rotate it in Vault")
		}
		if role := ann[vaultRole]; role != "" {
			notes = append(notes, fmt.Sprintf("read with Vault role %s, which the pod's ServiceAccount token logs in to: revoke the Vault tokens issued to it", role))
		}
		it.Note = strings.Join(notes, "; ")
	}
}

// vaultAgentRef turns a Vault Agent secret path into a reference. A KV
// version 2 path reads MOUNT/data/PATH; the reference names MOUNT/PATH.
func vaultAgentRef(path string) (ref string, kv2 bool) {
	path = strings.Trim(path, "/")
	mount, rest, _ := strings.Cut(path, "/")
	if p, ok := strings.CutPrefix(rest, "data/"); ok && p != "" {
		return Ref{Store: StoreVault, Mount: mount, Path: p}.String(), true
	}
	return "vault://" + path, false
}

// The External Secrets Operator's API, newest first.
const esGroup = "external-secrets.io"

var externalSecretVersions = []string{"v1", "v1beta1"}

// externalSecrets adds the remote secrets of the ExternalSecrets whose
// target is one of the pod's Secrets.
func (b *planBuilder) externalSecrets(ctx context.Context, dyn dynamic.Interface) error {
	ns := b.plan.Namespace
	var list *unstructured.UnstructuredList
	var version string
	for _, v := range externalSecretVersions {
		l, err := dyn.Resource(schema.GroupVersionResource{Group: esGroup, Version: v, Resource: "externalsecrets"}).Namespace(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue // that version, or the whole API, is not installed
		}
		if apierrors.IsForbidden(err) {
			b.warn("listing ExternalSecrets in %s is forbidden: the plan misses the remote secrets they fill the pod's Secrets from", ns)
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing ExternalSecrets in %s: %w", ns, err)
		}
		list, version = l, v
		break
	}
	if list == nil {
		return nil
	}
	slices.SortFunc(list.Items, func(x, y unstructured.Unstructured) int { return strings.Compare(x.GetName(), y.GetName()) })
	stores := &storeCache{dyn: dyn, ns: ns, version: version, known: map[storeRef]storeInfo{}}
	for _, es := range list.Items {
		target, _, _ := unstructured.NestedString(es.Object, "spec", "target", "name")
		target = cmp.Or(target, es.GetName()) // the operator's default
		if !b.secret[target] {
			continue
		}
		if err := b.externalSecret(ctx, stores, &es, target); err != nil {
			return err
		}
	}
	return nil
}

func (b *planBuilder) externalSecret(ctx context.Context, stores *storeCache, es *unstructured.Unstructured, target string) error {
	ns, name := b.plan.Namespace, es.GetName()
	secret := &b.plan.Items[b.byRef["secret://"+ns+"/"+target]]
	secret.Note = fmt.Sprintf("filled by ExternalSecret %s from its remote secrets: rotate those and the operator refreshes it", name)
	defStore := storeRefOf(es.Object, "spec", "secretStoreRef")
	via := "ExternalSecret " + name + " (Secret " + target + ")"
	remote := func(store storeRef, key, property string) error {
		if key == "" {
			return nil
		}
		info, err := stores.get(ctx, store)
		if err != nil {
			return err
		}
		b.addRemote(info, name, key, property, via)
		return nil
	}
	data, _, _ := unstructured.NestedSlice(es.Object, "spec", "data")
	for _, d := range data {
		m, _ := d.(map[string]any)
		key, _, _ := unstructured.NestedString(m, "remoteRef", "key")
		property, _, _ := unstructured.NestedString(m, "remoteRef", "property")
		store := storeRefOf(m, "sourceRef", "storeRef")
		if store.Name == "" {
			store = defStore
		}
		if err := remote(store, key, property); err != nil {
			return err
		}
	}
	dataFrom, _, _ := unstructured.NestedSlice(es.Object, "spec", "dataFrom")
	for _, d := range dataFrom {
		m, _ := d.(map[string]any)
		store := storeRefOf(m, "sourceRef", "storeRef")
		if store.Name == "" {
			store = defStore
		}
		if _, gen, _ := unstructured.NestedMap(m, "sourceRef", "generatorRef"); gen {
			b.warn("ExternalSecret %s/%s generates values (dataFrom generatorRef): kir cannot rotate them; delete the Secret %s so that the operator generates new ones", ns, name, target)
			continue
		}
		if _, find, _ := unstructured.NestedMap(m, "find"); find {
			b.warn("ExternalSecret %s/%s finds its remote secrets by name or tag (dataFrom find): kir cannot list which; look them up in the store", ns, name)
		}
		key, _, _ := unstructured.NestedString(m, "extract", "key")
		if err := remote(store, key, ""); err != nil {
			return err
		}
	}
	return nil
}

// addRemote adds one remote secret of an ExternalSecret.
func (b *planBuilder) addRemote(store storeInfo, es, key, property, via string) {
	switch store.kind {
	case ItemVault:
		mount, path := store.mount, strings.TrimPrefix(key, "/")
		if mount == "" {
			mount, path, _ = strings.Cut(path, "/")
		}
		path = strings.TrimPrefix(path, "data/")
		ref := Ref{Store: StoreVault, Mount: mount, Path: path, Key: property}.String()
		it := b.add(ItemVault, ref, via)
		if store.kv2 {
			it.Command = rotateSecretCommand(ref)
		} else if it.Note == "" {
			it.Note = "a KV version 1 secret: kir rotates KV version 2 only; rotate it in Vault"
		}
	case ItemSecretsManager:
		ref := Ref{Store: StoreSecretsManager, Name: key, Key: property}.String()
		b.add(ItemSecretsManager, ref, via).Command = rotateSecretCommand(ref)
	default:
		it := b.add(ItemExternalSecret, "external-secret://"+b.plan.Namespace+"/"+es+"#"+key, via)
		it.Note = store.note
	}
}

// storeRef names a SecretStore or ClusterSecretStore.
type storeRef struct{ Kind, Name string }

func storeRefOf(obj map[string]any, fields ...string) storeRef {
	name, _, _ := unstructured.NestedString(obj, append(fields, "name")...)
	kind, _, _ := unstructured.NestedString(obj, append(fields, "kind")...)
	return storeRef{Kind: cmp.Or(kind, "SecretStore"), Name: name}
}

// storeInfo is where a store keeps its secrets, as far as kir can tell.
type storeInfo struct {
	kind  string // ItemVault, ItemSecretsManager or ItemExternalSecret
	mount string // Vault: the KV mount, if the store names one
	kv2   bool
	note  string // ItemExternalSecret: why kir cannot place it
}

// storeCache reads each store once.
type storeCache struct {
	dyn     dynamic.Interface
	ns      string
	version string
	known   map[storeRef]storeInfo
}

func (c *storeCache) get(ctx context.Context, ref storeRef) (storeInfo, error) {
	if info, ok := c.known[ref]; ok {
		return info, nil
	}
	var res dynamic.ResourceInterface
	switch ref.Kind {
	case "SecretStore":
		res = c.dyn.Resource(schema.GroupVersionResource{Group: esGroup, Version: c.version, Resource: "secretstores"}).Namespace(c.ns)
	case "ClusterSecretStore":
		res = c.dyn.Resource(schema.GroupVersionResource{Group: esGroup, Version: c.version, Resource: "clustersecretstores"})
	default:
		info := storeInfo{kind: ItemExternalSecret, note: fmt.Sprintf("its store is a %s %s, which kir does not know", ref.Kind, ref.Name)}
		c.known[ref] = info
		return info, nil
	}
	obj, err := res.Get(ctx, ref.Name, metav1.GetOptions{})
	var info storeInfo
	switch {
	case apierrors.IsNotFound(err):
		info = storeInfo{kind: ItemExternalSecret, note: fmt.Sprintf("its store %s %s does not exist", ref.Kind, ref.Name)}
	case apierrors.IsForbidden(err):
		info = storeInfo{kind: ItemExternalSecret, note: fmt.Sprintf("reading its store %s %s is forbidden, so kir cannot tell where the secret lives", ref.Kind, ref.Name)}
	case err != nil:
		return storeInfo{}, fmt.Errorf("getting %s %s: %w", ref.Kind, ref.Name, err)
	default:
		info = providerOf(obj, ref)
	}
	c.known[ref] = info
	return info, nil
}

// providerOf reads a store's provider.
func providerOf(store *unstructured.Unstructured, ref storeRef) storeInfo {
	if v, ok, _ := unstructured.NestedMap(store.Object, "spec", "provider", "vault"); ok {
		mount, _, _ := unstructured.NestedString(v, "path")
		version, _, _ := unstructured.NestedString(v, "version")
		return storeInfo{kind: ItemVault, mount: strings.Trim(mount, "/"), kv2: version == "" || version == "v2"}
	}
	if a, ok, _ := unstructured.NestedMap(store.Object, "spec", "provider", "aws"); ok {
		if service, _, _ := unstructured.NestedString(a, "service"); service == "SecretsManager" {
			return storeInfo{kind: ItemSecretsManager}
		}
	}
	providers, _, _ := unstructured.NestedMap(store.Object, "spec", "provider")
	var names []string
	for k := range providers {
		names = append(names, k)
	}
	slices.Sort(names)
	return storeInfo{kind: ItemExternalSecret, note: fmt.Sprintf("its store %s %s uses provider %s, which kir does not rotate", ref.Kind, ref.Name, strings.Join(names, ", "))}
}

// serviceAccountOf is the ServiceAccount pods of spec run as.
func serviceAccountOf(spec *corev1.PodSpec) string {
	return cmp.Or(spec.ServiceAccountName, spec.DeprecatedServiceAccount, "default")
}

// rotateSecretCommand is the command that rotates a Vault or Secrets
// Manager secret.
func rotateSecretCommand(ref string) string { return "kir rotate secret " + shellQuote(ref) }

// shellQuote quotes s for a POSIX shell unless it needs no quoting.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_.:#@=+-,", r)
	}
	if s != "" && !strings.HasPrefix(s, "#") && strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
