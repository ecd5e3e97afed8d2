package collect

import (
	corev1 "k8s.io/api/core/v1"
)

// SecretReferences is manifests/secret-references.json: every Secret the
// pod uses, by name and key, as its spec says, so that the responder knows
// which credentials to rotate. It is built from the pod spec alone: no
// Secret is read, and so no value can leak into the evidence.
type SecretReferences struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Namespace  string            `json:"namespace"`
	Pod        string            `json:"pod"`
	References []SecretReference `json:"references"`
}

// SecretReference is one use of a Secret by the pod.
type SecretReference struct {
	// Secret is the Secret's name, in the pod's namespace.
	Secret string `json:"secret"`
	// Via says how: volume, projected, env, envFrom, imagePullSecrets, or
	// the volume type whose secretRef it is (csi, cephfs, …).
	Via string `json:"via"`
	// Volume is the volume's name, for volumes.
	Volume string `json:"volume,omitempty"`
	// Container and Env name the container and variable, for env and
	// envFrom (Prefix is envFrom's prefix).
	Container string `json:"container,omitempty"`
	Env       string `json:"env,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	// Keys are the keys used, with the file each is mounted as; none
	// means every key of the Secret.
	Keys     []SecretKey `json:"keys,omitempty"`
	Optional bool        `json:"optional,omitempty"`
}

// SecretKey is one key of a Secret, and the path it is mounted at.
type SecretKey struct {
	Key  string `json:"key"`
	Path string `json:"path,omitempty"`
}

// secretReferences writes manifests/secret-references.json.
func (r *run) secretReferences() {
	refs := secretReferences(r.pod)
	src := r.source("manifest")
	src.Object = "Pod/" + r.namespace + "/" + r.name
	src.Note = "built from the pod spec; no Secret was read"
	if _, err := r.putJSON("manifests/secret-references.json", refs, src); err != nil {
		r.fail("manifests", err)
	}
}

// secretReferences lists every use of a Secret in the pod's spec.
func secretReferences(pod *corev1.Pod) SecretReferences {
	out := SecretReferences{APIVersion: "kir.dev/v1alpha1", Kind: "SecretReferences", Namespace: pod.Namespace, Pod: pod.Name, References: []SecretReference{}}
	add := func(ref SecretReference) { out.References = append(out.References, ref) }
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil:
			add(SecretReference{Secret: v.Secret.SecretName, Via: "volume", Volume: v.Name, Keys: keys(v.Secret.Items), Optional: isTrue(v.Secret.Optional)})
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					add(SecretReference{Secret: s.Secret.Name, Via: "projected", Volume: v.Name, Keys: keys(s.Secret.Items), Optional: isTrue(s.Secret.Optional)})
				}
			}
		case v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
			add(SecretReference{Secret: v.CSI.NodePublishSecretRef.Name, Via: "csi", Volume: v.Name})
		case v.AzureFile != nil:
			add(SecretReference{Secret: v.AzureFile.SecretName, Via: "azureFile", Volume: v.Name})
		case v.CephFS != nil && v.CephFS.SecretRef != nil:
			add(SecretReference{Secret: v.CephFS.SecretRef.Name, Via: "cephfs", Volume: v.Name})
		case v.RBD != nil && v.RBD.SecretRef != nil:
			add(SecretReference{Secret: v.RBD.SecretRef.Name, Via: "rbd", Volume: v.Name})
		case v.ISCSI != nil && v.ISCSI.SecretRef != nil:
			add(SecretReference{Secret: v.ISCSI.SecretRef.Name, Via: "iscsi", Volume: v.Name})
		case v.FlexVolume != nil && v.FlexVolume.SecretRef != nil:
			add(SecretReference{Secret: v.FlexVolume.SecretRef.Name, Via: "flexVolume", Volume: v.Name})
		case v.ScaleIO != nil && v.ScaleIO.SecretRef != nil:
			add(SecretReference{Secret: v.ScaleIO.SecretRef.Name, Via: "scaleIO", Volume: v.Name})
		case v.StorageOS != nil && v.StorageOS.SecretRef != nil:
			add(SecretReference{Secret: v.StorageOS.SecretRef.Name, Via: "storageos", Volume: v.Name})
		}
	}
	eachContainer(pod, func(c *corev1.Container) {
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				add(SecretReference{Secret: e.SecretRef.Name, Via: "envFrom", Container: c.Name, Prefix: e.Prefix, Optional: isTrue(e.SecretRef.Optional)})
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				k := e.ValueFrom.SecretKeyRef
				add(SecretReference{Secret: k.Name, Via: "env", Container: c.Name, Env: e.Name, Keys: []SecretKey{{Key: k.Key}}, Optional: isTrue(k.Optional)})
			}
		}
	})
	for _, s := range pod.Spec.ImagePullSecrets {
		add(SecretReference{Secret: s.Name, Via: "imagePullSecrets"})
	}
	return out
}

func keys(items []corev1.KeyToPath) []SecretKey {
	var out []SecretKey
	for _, it := range items {
		out = append(out, SecretKey{Key: it.Key, Path: it.Path})
	}
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }
