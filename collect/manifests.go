package collect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/internal/kube"
)

// maxOwnerDepth bounds the owner chain walked up from the pod; real
// chains are two deep (ReplicaSet → Deployment, Job → CronJob).
const maxOwnerDepth = 8

// object is what a typed client returns.
type object interface {
	metav1.Object
	runtime.Object
}

// manifests writes the objects around the pod that say how it came to run
// and what it may do: its owners, node, ServiceAccount, the Services and
// NetworkPolicies that select it, the RBAC bound to its ServiceAccount,
// the ConfigMaps it uses, and the names of the Secrets it uses.
func (r *run) manifests(ctx context.Context) {
	written := map[string]bool{}
	r.owners(ctx, written, r.pod.OwnerReferences, map[types.UID]bool{}, 1)
	if node := r.pod.Spec.NodeName; node != "" {
		getManifest(ctx, r, written, corev1.SchemeGroupVersion.WithKind("Node"), "", node, r.client.CoreV1().Nodes().Get)
	}
	sa := serviceAccount(r.pod)
	getManifest(ctx, r, written, corev1.SchemeGroupVersion.WithKind("ServiceAccount"), r.namespace, sa, r.client.CoreV1().ServiceAccounts(r.namespace).Get)
	r.services(ctx, written)
	r.networkPolicies(ctx, written)
	r.rbac(ctx, written, sa)
	for _, name := range configMaps(r.pod) {
		getManifest(ctx, r, written, corev1.SchemeGroupVersion.WithKind("ConfigMap"), r.namespace, name, r.client.CoreV1().ConfigMaps(r.namespace).Get)
	}
	r.secretReferences()
}

// serviceAccount is the pod's ServiceAccount, "default" when unset.
func serviceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return "default"
}

// getManifest reads one object with get and writes it. A missing object
// is a note: an optional ConfigMap, an owner already deleted.
func getManifest[T object](ctx context.Context, r *run, written map[string]bool, gvk schema.GroupVersionKind, namespace, name string, get func(context.Context, string, metav1.GetOptions) (T, error)) (T, bool) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	collected := r.now()
	ctx, auditID := kube.CaptureAuditID(ctx)
	obj, err := get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.note("manifests", "%s not found", objectName(gvk.Kind, namespace, name))
		return obj, false
	case err != nil:
		r.fail("manifests", fmt.Errorf("reading %s: %w", objectName(gvk.Kind, namespace, name), err))
		return obj, false
	}
	r.writeManifest(written, gvk, obj, auditID(), collected)
	return obj, true
}

// writeManifest writes manifests/<kind>/<name>.json, once per object,
// without metadata.managedFields: who-touched-which-field bookkeeping is
// noise here (pod.json keeps it). A ":" in a name (system:discovery)
// becomes "%3A", which no Kubernetes name holds, so that the bundle
// unpacks on every file system; Source.Object keeps the name as it is.
func (r *run) writeManifest(written map[string]bool, gvk schema.GroupVersionKind, obj object, auditID string, collected time.Time) {
	file := "manifests/" + strings.ToLower(gvk.Kind) + "/" + strings.ReplaceAll(obj.GetName(), ":", "%3A") + ".json"
	if written[file] {
		return
	}
	written[file] = true
	obj.SetManagedFields(nil)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	src := r.source("manifest")
	src.Object = objectName(gvk.Kind, obj.GetNamespace(), obj.GetName())
	src.AuditID, src.Collected = auditID, collected
	if _, err := r.putJSON(file, obj, src); err != nil {
		r.fail("manifests", err)
	}
}

// objectName is kind/namespace/name, or kind/name for cluster objects.
func objectName(kind, namespace, name string) string {
	if namespace == "" {
		return kind + "/" + name
	}
	return kind + "/" + namespace + "/" + name
}

// owners walks the ownerReferences up from the pod: ReplicaSet →
// Deployment, Job → CronJob, and so on.
func (r *run) owners(ctx context.Context, written map[string]bool, refs []metav1.OwnerReference, seen map[types.UID]bool, depth int) {
	ns := r.namespace
	for _, ref := range refs {
		if seen[ref.UID] {
			continue
		}
		seen[ref.UID] = true
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			r.note("manifests", "owner %s %s has an invalid apiVersion %q", ref.Kind, ref.Name, ref.APIVersion)
			continue
		}
		var (
			obj object
			ok  bool
		)
		switch gv.WithKind(ref.Kind).GroupKind() {
		case appsv1.SchemeGroupVersion.WithKind("ReplicaSet").GroupKind():
			obj, ok = getManifest(ctx, r, written, appsv1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.AppsV1().ReplicaSets(ns).Get)
		case appsv1.SchemeGroupVersion.WithKind("Deployment").GroupKind():
			obj, ok = getManifest(ctx, r, written, appsv1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.AppsV1().Deployments(ns).Get)
		case appsv1.SchemeGroupVersion.WithKind("StatefulSet").GroupKind():
			obj, ok = getManifest(ctx, r, written, appsv1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.AppsV1().StatefulSets(ns).Get)
		case appsv1.SchemeGroupVersion.WithKind("DaemonSet").GroupKind():
			obj, ok = getManifest(ctx, r, written, appsv1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.AppsV1().DaemonSets(ns).Get)
		case batchv1.SchemeGroupVersion.WithKind("Job").GroupKind():
			obj, ok = getManifest(ctx, r, written, batchv1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.BatchV1().Jobs(ns).Get)
		case batchv1.SchemeGroupVersion.WithKind("CronJob").GroupKind():
			obj, ok = getManifest(ctx, r, written, batchv1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.BatchV1().CronJobs(ns).Get)
		case corev1.SchemeGroupVersion.WithKind("ReplicationController").GroupKind():
			obj, ok = getManifest(ctx, r, written, corev1.SchemeGroupVersion.WithKind(ref.Kind), ns, ref.Name, r.client.CoreV1().ReplicationControllers(ns).Get)
		case corev1.SchemeGroupVersion.WithKind("Node").GroupKind():
			// A static (mirror) pod's owner is its node, collected anyway.
			continue
		default:
			r.note("manifests", "owner %s %s/%s (%s) not collected: kir reads only the built-in controllers", ref.Kind, ns, ref.Name, ref.APIVersion)
			continue
		}
		if !ok {
			continue
		}
		if obj.GetUID() != ref.UID {
			r.note("manifests", "owner %s %s/%s was replaced: the pod names UID %s, the one collected has %s", ref.Kind, ns, ref.Name, ref.UID, obj.GetUID())
			continue
		}
		if depth < maxOwnerDepth {
			r.owners(ctx, written, obj.GetOwnerReferences(), seen, depth+1)
		}
	}
}

// services writes the Services whose selector selects the pod.
func (r *run) services(ctx context.Context, written map[string]bool) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	collected := r.now()
	ctx, auditID := kube.CaptureAuditID(ctx)
	list, err := r.client.CoreV1().Services(r.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		r.fail("manifests", fmt.Errorf("listing the services of %s: %w", r.namespace, err))
		return
	}
	podLabels := labels.Set(r.pod.Labels)
	for i := range list.Items {
		s := &list.Items[i]
		// A Service without a selector selects nothing: its endpoints
		// are managed by hand.
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			r.writeManifest(written, corev1.SchemeGroupVersion.WithKind("Service"), s, auditID(), collected)
		}
	}
}

// networkPolicies writes the NetworkPolicies whose podSelector selects the
// pod: those that decide what traffic reaches and leaves it.
func (r *run) networkPolicies(ctx context.Context, written map[string]bool) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	collected := r.now()
	ctx, auditID := kube.CaptureAuditID(ctx)
	list, err := r.client.NetworkingV1().NetworkPolicies(r.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		r.fail("manifests", fmt.Errorf("listing the network policies of %s: %w", r.namespace, err))
		return
	}
	podLabels := labels.Set(r.pod.Labels)
	for i := range list.Items {
		p := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			r.note("manifests", "network policy %s has an invalid pod selector: %v", p.Name, err)
			continue
		}
		if sel.Matches(podLabels) {
			r.writeManifest(written, networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"), p, auditID(), collected)
		}
	}
}

// rbac writes the RoleBindings and ClusterRoleBindings that bind the pod's
// ServiceAccount, and the Roles and ClusterRoles they grant.
func (r *run) rbac(ctx context.Context, written map[string]bool, sa string) {
	var roles, clusterRoles []string
	func() {
		ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		defer cancel()
		collected := r.now()
		ctx, auditID := kube.CaptureAuditID(ctx)
		list, err := r.client.RbacV1().RoleBindings(r.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			r.fail("manifests", fmt.Errorf("listing the role bindings of %s: %w", r.namespace, err))
			return
		}
		for i := range list.Items {
			b := &list.Items[i]
			if !bindsServiceAccount(b.Subjects, b.Namespace, r.namespace, sa) {
				continue
			}
			r.writeManifest(written, rbacv1.SchemeGroupVersion.WithKind("RoleBinding"), b, auditID(), collected)
			if b.RoleRef.Kind == "ClusterRole" {
				clusterRoles = append(clusterRoles, b.RoleRef.Name)
			} else {
				roles = append(roles, b.RoleRef.Name)
			}
		}
	}()
	func() {
		ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		defer cancel()
		collected := r.now()
		ctx, auditID := kube.CaptureAuditID(ctx)
		list, err := r.client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
		if err != nil {
			r.fail("manifests", fmt.Errorf("listing the cluster role bindings: %w", err))
			return
		}
		for i := range list.Items {
			b := &list.Items[i]
			if bindsServiceAccount(b.Subjects, "", r.namespace, sa) {
				r.writeManifest(written, rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding"), b, auditID(), collected)
				clusterRoles = append(clusterRoles, b.RoleRef.Name)
			}
		}
	}()
	slices.Sort(roles)
	for _, name := range slices.Compact(roles) {
		getManifest(ctx, r, written, rbacv1.SchemeGroupVersion.WithKind("Role"), r.namespace, name, r.client.RbacV1().Roles(r.namespace).Get)
	}
	slices.Sort(clusterRoles)
	for _, name := range slices.Compact(clusterRoles) {
		getManifest(ctx, r, written, rbacv1.SchemeGroupVersion.WithKind("ClusterRole"), "", name, r.client.RbacV1().ClusterRoles().Get)
	}
}

// bindsServiceAccount reports whether a binding in bindingNamespace (""
// for a ClusterRoleBinding) with these subjects applies to the service
// account namespace/name, as the RBAC authorizer decides it: by
// ServiceAccount subject (whose namespace defaults to the binding's), by
// its user name, or by one of the groups every service account token
// carries.
func bindsServiceAccount(subjects []rbacv1.Subject, bindingNamespace, namespace, name string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = bindingNamespace
			}
			if ns == namespace && s.Name == name {
				return true
			}
		case rbacv1.UserKind:
			if s.Name == "system:serviceaccount:"+namespace+":"+name {
				return true
			}
		case rbacv1.GroupKind:
			switch s.Name {
			case "system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated":
				return true
			}
		}
	}
	return false
}

// configMaps lists the ConfigMaps the pod mounts or reads, sorted.
func configMaps(pod *corev1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil {
			names = append(names, v.ConfigMap.Name)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					names = append(names, s.ConfigMap.Name)
				}
			}
		}
	}
	eachContainer(pod, func(c *corev1.Container) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				names = append(names, e.ConfigMapRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				names = append(names, e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	})
	slices.Sort(names)
	return slices.Compact(names)
}

// eachContainer calls f with every container of the pod, ephemeral ones
// as the Container they share their fields with.
func eachContainer(pod *corev1.Pod, f func(c *corev1.Container)) {
	for i := range pod.Spec.InitContainers {
		f(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		f(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.EphemeralContainers {
		c := corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		f(&c)
	}
}
