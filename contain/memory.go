package contain

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"

	"kir.dev/kir/action"
)

// The memory of a quarantine: a Lease per pod in kir's namespace, written
// by the kir that contained it, from which the tamper guard (package
// tamper) learns what to guard. It lives in kir's namespace because the
// pod's namespace is the attacker's: a NetworkPolicy labelled as kir's and
// named after a pod is anyone's to create there (whoever may create
// policies), and a guard that learned from it would lend kir's power to
// label and isolate a neighbour pod.
const (
	// LabelComponent marks the memory Leases.
	LabelComponent = "app.kubernetes.io/component"
	// ComponentMemory is LabelComponent's value on them.
	ComponentMemory = "kir-tamper-memory"
	// AnnotationMemory holds the Quarantine, as JSON.
	AnnotationMemory = "kir.dev/quarantine"
)

// MemoryLease is the name of the Lease that remembers the quarantine of
// the pod with this UID.
func MemoryLease(uid types.UID) string { return "kir-tamper-" + string(uid) }

// MemoryApply is the Lease that remembers q, held by holder.
func MemoryApply(ns, holder string, q Quarantine, now time.Time) (*coordinationv1ac.LeaseApplyConfiguration, error) {
	b, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	t := metav1.NewMicroTime(now)
	return coordinationv1ac.Lease(MemoryLease(q.UID), ns).
		WithLabels(map[string]string{action.LabelManagedBy: action.ManagedByKir, LabelComponent: ComponentMemory}).
		WithAnnotations(map[string]string{AnnotationMemory: string(b), action.AnnotationPod: q.Namespace + "/" + q.Name}).
		WithSpec(coordinationv1ac.LeaseSpec().WithHolderIdentity(truncate(holder, 128)).WithAcquireTime(t).WithRenewTime(t)), nil
}

// ReadMemory reads the quarantine a memory Lease holds.
func ReadMemory(name string, annotations map[string]string) (Quarantine, error) {
	var q Quarantine
	if err := json.Unmarshal([]byte(annotations[AnnotationMemory]), &q); err != nil {
		return Quarantine{}, fmt.Errorf("memory Lease %s: annotation %s: %w", name, AnnotationMemory, err)
	}
	if q.UID == "" || q.Namespace == "" || q.Name == "" || name != MemoryLease(q.UID) {
		return Quarantine{}, fmt.Errorf("memory Lease %s does not name the pod it is named after", name)
	}
	return q, nil
}

// remember writes the memory of q in kir's namespace, once q's policy is
// written. Where kir has no namespace there is no guard to tell; where
// kir may not write there (a responder without the Role kir-responder),
// the containment stands and the warning returned says it is not
// guarded.
func remember(ctx context.Context, env action.Env, j *action.WriteLog, q Quarantine) (warning string) {
	ns := env.KirNamespace
	apply, err := MemoryApply(ns, env.Actor, q, env.Now().UTC())
	if err != nil {
		return fmt.Sprintf("pod %s/%s: kir serve's tamper guard does not know this quarantine: %v", q.Namespace, q.Name, err)
	}
	err = j.Do(action.Write{Verb: "apply", Kind: "Lease", Namespace: ns, Name: *apply.Name, Body: apply}, func() (any, error) {
		l, err := env.Kube.CoordinationV1().Leases(ns).Apply(ctx, apply, applyOpts(env, action.FieldManager))
		if apierrors.IsNotFound(err) {
			return nil, nil // no kir namespace, no guard
		}
		return l, err
	})
	if err != nil {
		return fmt.Sprintf("pod %s/%s is isolated, but if kir serve runs in this cluster, its tamper guard will not restore it if it is lifted: writing its memory (Lease %s/%s: get, create, patch and delete leases there, as the Role kir-responder grants): %v", q.Namespace, q.Name, ns, *apply.Name, err)
	}
	return ""
}

// forgetMemory deletes the memory of pod, if there is one, before Release
// lifts the quarantine (after its mark): a guard that started later would
// otherwise restore it. It reads first (kir-contain may get Leases anywhere), so
// that a responder who may not write in kir's namespace still releases a
// pod whose containment could not write its memory either.
//
// first, when there is a memory, runs before it is deleted (the release
// mark, where Release has not written it yet).
func forgetMemory(ctx context.Context, env action.Env, j *action.WriteLog, pod *corev1.Pod, first func() error) error {
	ns, name := env.KirNamespace, MemoryLease(pod.UID)
	_, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading the memory of its quarantine in kir's namespace (Lease %s/%s): %w", ns, name, err)
	}
	if first != nil {
		if err := first(); err != nil {
			return err
		}
	}
	err = j.Do(action.Write{Verb: "delete", Kind: "Lease", Namespace: ns, Name: name}, func() (any, error) {
		err := env.Kube.CoordinationV1().Leases(ns).Delete(ctx, name, metav1.DeleteOptions{DryRun: env.DryRun.Opts()})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("deleting the memory of its quarantine in kir's namespace (Lease %s/%s), without which kir serve's tamper guard would restore the quarantine when it next starts: %w", ns, name, err)
	}
	return nil
}
