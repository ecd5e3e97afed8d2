package rotate

import (
	"context"
	"encoding/json"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kubeRule is one RBAC rule over resources of one API group.
func kubeRule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

// metadataOnly asks the API server for PartialObjectMetadataList instead of
// the objects themselves.
const metadataOnly = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

// secretsMetadata lists the metadata of the Secrets of a namespace that
// opts select, and nothing else: the server never sends their data, so no
// credential reaches kir even though RBAC's list verb would allow it.
func secretsMetadata(ctx context.Context, kube kubernetes.Interface, namespace string, opts metav1.ListOptions) ([]metav1.PartialObjectMetadata, error) {
	rc := kube.CoreV1().RESTClient()
	if c, ok := rc.(*rest.RESTClient); rc == nil || (ok && c == nil) {
		// A fake clientset has no REST client; it holds no real
		// credential either.
		list, err := kube.CoreV1().Secrets(namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out := make([]metav1.PartialObjectMetadata, len(list.Items))
		for i, s := range list.Items {
			out[i] = metav1.PartialObjectMetadata{TypeMeta: s.TypeMeta, ObjectMeta: s.ObjectMeta}
		}
		return out, nil
	}
	req := rc.Get().Namespace(namespace).Resource("secrets").SetHeader("Accept", metadataOnly)
	if opts.FieldSelector != "" {
		req = req.Param("fieldSelector", opts.FieldSelector)
	}
	if opts.LabelSelector != "" {
		req = req.Param("labelSelector", opts.LabelSelector)
	}
	raw, err := req.Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var list metav1.PartialObjectMetadataList
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("decoding the Secrets' metadata: %w", err)
	}
	if list.Kind != "PartialObjectMetadataList" {
		// Never decode (and so never hold) a full Secret list.
		return nil, fmt.Errorf("the API server answered a metadata-only list of Secrets with %q", list.Kind)
	}
	return list.Items, nil
}
