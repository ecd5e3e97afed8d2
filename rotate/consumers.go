package rotate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
)

// SyncParams are rotate.sync-kube-secret's parameters.
type SyncParams struct {
	SecretParams
	Version          string `json:"version" kir:"required" doc:"The store's version whose value the Kubernetes Secret gets."`
	KubeSecret       string `json:"kubeSecret" kir:"required" doc:"NAMESPACE/NAME[#KEY] of the Kubernetes Secret holding a copy of the value; KEY defaults to the reference's."`
	RestartConsumers bool   `json:"restartConsumers,omitempty" doc:"Restart the Deployments, StatefulSets and DaemonSets that mount or reference the Secret (kubectl rollout restart's annotation), except those that would delete a quarantined pod."`
}

// Validate checks the parameters without I/O.
func (p SyncParams) Validate() error {
	errs := []error{p.validate()}
	if _, _, _, err := p.target(); err != nil {
		errs = append(errs, err)
	}
	if p.Version == "" {
		errs = append(errs, errors.New("version must not be empty"))
	}
	return errors.Join(errs...)
}

func (p SyncParams) target() (ns, name, key string, err error) {
	rest, key, _ := strings.Cut(p.KubeSecret, "#")
	ns, name, ok := strings.Cut(rest, "/")
	if !ok || ns == "" || name == "" {
		return "", "", "", fmt.Errorf("kubeSecret %q: want NAMESPACE/NAME[#KEY]", p.KubeSecret)
	}
	if key == "" {
		if ref, err := ParseRef(p.Ref); err == nil {
			key = ref.Key
		}
	}
	if key == "" {
		return "", "", "", fmt.Errorf("kubeSecret %q: name the key (#KEY): the reference %s names none", p.KubeSecret, p.Ref)
	}
	return ns, name, key, nil
}

// SyncOutput is what rotate.sync-kube-secret did.
type SyncOutput struct {
	Secret         string     `json:"secret"`
	Key            string     `json:"key"`
	Updated        bool       `json:"updated"`
	Restarted      []Workload `json:"restarted"`
	RestartSkipped []Workload `json:"restartSkipped,omitempty"`
}

// syncNote fixes the restart time, so that a resumed run restarts nothing
// twice.
type syncNote struct {
	RestartedAt string `json:"restartedAt"`
}

// SyncKubeSecret copies a rotated value into the Kubernetes Secret that
// also holds it, and restarts the workloads that use that Secret. The
// value is read back from the store, never from the journal; the recorded
// write names the key, not the value.
func (s Stores) SyncKubeSecret(ctx context.Context, env action.Env, p SyncParams) (action.Result, error) {
	ns, name, key, _ := p.target()
	ref, _ := ParseRef(p.Ref)
	out := SyncOutput{Secret: ns + "/" + name, Key: key, Restarted: []Workload{}}
	res := action.Result{Output: &out}
	value, err := s.readValue(ctx, ref, p.SecretParams, p.Version)
	if err != nil {
		return res, err
	}
	sec, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return res, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	if string(sec.Data[key]) != value {
		patch, _ := json.Marshal(map[string]any{"data": map[string]string{key: base64.StdEncoding.EncodeToString([]byte(value))}})
		w := action.Write{Verb: "patch", Kind: "Secret", Namespace: ns, Name: name,
			Body: map[string]any{"data": map[string]string{key: "(the new value; not recorded)"}}}
		if env.DryRun.Writes() {
			// The server's answer holds the data: never recorded.
			_, err := env.Kube.CoreV1().Secrets(ns).Patch(ctx, name, types.MergePatchType, patch,
				metav1.PatchOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()})
			if err != nil {
				w.Error = err.Error()
				res.Writes = append(res.Writes, w)
				return res, fmt.Errorf("updating Secret %s/%s: %w", ns, name, err)
			}
			w.Done = true
		}
		res.Writes = append(res.Writes, w)
		out.Updated, res.Changed = true, true
	}
	if !p.RestartConsumers {
		return res, nil
	}
	at := env.Now().UTC().Format(time.RFC3339)
	for _, n := range notesOf[syncNote](env) {
		at = n.RestartedAt
	}
	if len(env.Notes) == 0 {
		if err := note(env, syncNote{RestartedAt: at}); err != nil {
			return res, err
		}
	}
	pods, err := env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: action.LabelQuarantine})
	if err != nil {
		return res, fmt.Errorf("listing the quarantined pods of %s: %w", ns, err)
	}
	ws, err := workloadsIn(ctx, env.Kube, ns, func(spec *corev1.PodSpec) bool { return usesSecret(spec, name) })
	if err != nil {
		return res, fmt.Errorf("finding the consumers of Secret %s/%s: %w", ns, name, err)
	}
	j := &action.WriteLog{Dry: env.DryRun}
	before := len(res.Writes)
	for _, w := range ws {
		reason, err := restartBlocker(w, pods.Items)
		if err != nil {
			return res, err
		}
		if reason != "" {
			w.Reason = reason
			out.RestartSkipped = append(out.RestartSkipped, w.Workload)
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s/%s uses Secret %s and was not restarted (%s): it runs with the old value until restarted", w.Kind, ns, w.Name, name, reason))
			continue
		}
		if w.template.Annotations[restartedAtAnnotation] != at {
			patch := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
				"annotations": map[string]string{restartedAtAnnotation: at},
			}}}}
			body, _ := json.Marshal(patch)
			err := j.Do(action.Write{Verb: "patch", Kind: w.Kind, Namespace: ns, Name: w.Name, Body: patch}, func() (any, error) {
				return w.patchTarget(ctx, body, metav1.PatchOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()})
			})
			res.Writes = append(res.Writes[:before], j.Writes()...)
			if err != nil {
				return res, fmt.Errorf("restarting %s %s/%s: %w", w.Kind, ns, w.Name, err)
			}
			res.Changed = true
		}
		out.Restarted = append(out.Restarted, w.Workload)
	}
	return res, nil
}

// usesSecret reports whether pods of spec mount or reference the Secret.
func usesSecret(spec *corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == name {
					return true
				}
			}
		}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && e.SecretRef.Name == name {
				return true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name {
				return true
			}
		}
	}
	return false
}
