package rotate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
)

// Annotations kir writes on a ServiceAccount it rotated. They are part of
// kir's interface: do not change them. The incident is recorded under
// action.AnnotationIncident, as on every object kir changes.
const (
	// AnnotationRotatedFromUID holds the UID of the ServiceAccount the
	// rotation replaced: every token issued for that UID is invalid.
	AnnotationRotatedFromUID = "kir.dev/rotated-from-uid"
	// AnnotationRotatedAt holds the UTC time of the rotation (RFC 3339); it
	// is also the restartedAt value of the workloads kir restarted, so that
	// running the rotation again restarts nothing twice.
	AnnotationRotatedAt = "kir.dev/rotated-at"
	// AnnotationRotatedBy holds the identity kir acted as.
	AnnotationRotatedBy = "kir.dev/rotated-by"
)

// restartedAtAnnotation is the pod template annotation kubectl rollout
// restart sets.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

const (
	// probeLifetime is the lifetime of the probe token, in seconds: enough
	// for the rotation and its confirmation, short enough not to matter
	// if it leaks from memory.
	probeLifetime = 600
	// defaultConfirmTimeout bounds the wait for TokenReview to reject the
	// probe: API servers cache successful token reviews (10 s by default)
	// and each server of an HA control plane learns of the deletion from
	// its own watch.
	defaultConfirmTimeout = 2 * time.Minute
	confirmInterval       = time.Second
)

// ServiceAccountParams are the parameters of RotateServiceAccount and of
// rotate.serviceaccount.
type ServiceAccountParams struct {
	Namespace      string          `json:"namespace" kir:"required" doc:"Namespace of the ServiceAccount."`
	Name           string          `json:"name" kir:"required" doc:"Name of the ServiceAccount whose tokens are revoked."`
	ConfirmTimeout action.Duration `json:"confirmTimeout,omitempty" doc:"How long to wait for TokenReview to reject a token issued before the rotation (default 2m: API servers cache token reviews)."`
	NoRestart      bool            `json:"noRestart,omitempty" doc:"Do not restart the Deployments, StatefulSets and DaemonSets that run as the ServiceAccount; their pods' tokens are rejected until their kubelets refresh them."`
}

// Validate checks the parameters without I/O.
func (p ServiceAccountParams) Validate() error {
	var errs []error
	if p.Namespace == "" {
		errs = append(errs, errors.New("no namespace given"))
	} else if msgs := validation.IsDNS1123Label(p.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("invalid namespace %q: %s", p.Namespace, strings.Join(msgs, "; ")))
	}
	if p.Name == "" {
		errs = append(errs, errors.New("no ServiceAccount name given"))
	} else if msgs := validation.IsDNS1123Subdomain(p.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("invalid ServiceAccount name %q: %s", p.Name, strings.Join(msgs, "; ")))
	}
	if p.ConfirmTimeout < 0 {
		errs = append(errs, fmt.Errorf("confirmTimeout must not be negative, got %s", time.Duration(p.ConfirmTimeout)))
	}
	return errors.Join(errs...)
}

// ServiceAccountOutput is the output of RotateServiceAccount.
type ServiceAccountOutput struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// OldUID is the UID whose tokens are revoked; NewUID the
	// ServiceAccount's UID now (empty in a dry run).
	OldUID string `json:"oldUID"`
	NewUID string `json:"newUID"`
	// LegacySecretsDeleted are the kubernetes.io/service-account-token
	// Secrets deleted, sorted.
	LegacySecretsDeleted []string `json:"legacySecretsDeleted"`
	// Restarted are the workloads restarted to pick up new tokens.
	Restarted []Workload `json:"restarted"`
	// RestartSkipped are workloads that run as the ServiceAccount and were
	// not restarted, each with the reason.
	RestartSkipped []Workload `json:"restartSkipped,omitempty"`
	// Revoked is true once no ServiceAccount of the old UID exists: every
	// token issued for it is invalid.
	Revoked bool `json:"revoked"`
	// Confirmed is true when TokenReview rejected a token minted before
	// the rotation.
	Confirmed bool `json:"confirmed"`
}

// Workload is a Deployment, StatefulSet or DaemonSet.
type Workload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Reason says why a workload was not restarted.
	Reason string `json:"reason,omitempty"`
}

// ServiceAccountAction is rotate.serviceaccount.
func ServiceAccountAction() action.Action {
	return action.Func[ServiceAccountParams, ServiceAccountOutput]{
		Name:    "rotate.serviceaccount",
		Summary: "Revoke every token of a ServiceAccount by deleting its legacy token Secrets and recreating it under a new UID (RoleBindings still apply, by name), restart the workloads that run as it, and confirm with TokenReview that an old token is rejected; revocation cannot be rolled back.",
		Rules: []rbacv1.PolicyRule{
			kubeRule("", []string{"serviceaccounts"}, "get", "delete", "create", "update"),
			// The probe token, whose rejection confirms the revocation.
			kubeRule("", []string{"serviceaccounts/token"}, "create"),
			// Listed as metadata only: kir never receives a token.
			kubeRule("", []string{"secrets"}, "list", "delete"),
			// Which pods run as the ServiceAccount, and which are quarantined.
			kubeRule("", []string{"pods"}, "list"),
			kubeRule("apps", []string{"deployments", "statefulsets", "daemonsets"}, "list", "patch"),
			kubeRule("authentication.k8s.io", []string{"tokenreviews"}, "create"),
		},
		Do: RotateServiceAccount,
	}
}

// RotateServiceAccount revokes every token of a ServiceAccount. Bound
// tokens (TokenRequest, projected volumes) carry the ServiceAccount's UID
// and legacy tokens live in Secrets, so it deletes the legacy token Secrets
// and recreates the ServiceAccount with the same name, labels, annotations,
// image pull secrets and automount setting under a new UID. RoleBindings
// name their subjects, so the new ServiceAccount keeps every permission.
// It then restarts the workloads that run as it and polls TokenReview until
// a probe token minted before the rotation is rejected.
//
// Revocation cannot be rolled back: the old tokens are gone for good. Pods
// are never deleted; a quarantined pod that runs as the ServiceAccount
// keeps running with a rejected token, and a workload is not restarted if
// that would delete a quarantined pod.
//
// Running it again finishes an interrupted rotation without rotating
// twice. Before its first write it notes (env.Note) the ServiceAccount as
// it was, so that a run killed between the delete and the create recreates
// it from env.Notes; a run that is not journaled (env.Note nil) cannot, and
// its error then points at the ServiceAccount in its writes. The new
// ServiceAccount records the old UID, the time and the incident in its
// annotations: running again for the same incident changes nothing, and a
// new incident rotates again.
func RotateServiceAccount(ctx context.Context, env action.Env, p ServiceAccountParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	r := &saRotation{
		env: env, p: p, j: &action.WriteLog{Dry: env.DryRun}, id: p.Namespace + "/" + p.Name,
		out: ServiceAccountOutput{Namespace: p.Namespace, Name: p.Name, LegacySecretsDeleted: []string{}, Restarted: []Workload{}},
	}
	err := r.run(ctx)
	return action.Result{Changed: r.changed, Output: r.out, Warnings: r.warnings, Writes: r.j.Writes()}, err
}

// saNote is what a rotation notes before its first write: enough to
// recreate the ServiceAccount if the run is killed between deleting and
// recreating it. A ServiceAccount holds no secret, and the probe token is
// never noted.
type saNote struct {
	UID                          string                        `json:"uid"`
	Labels                       map[string]string             `json:"labels,omitempty"`
	Annotations                  map[string]string             `json:"annotations,omitempty"`
	OwnerReferences              []metav1.OwnerReference       `json:"ownerReferences,omitempty"`
	Secrets                      []corev1.ObjectReference      `json:"secrets,omitempty"`
	ImagePullSecrets             []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	AutomountServiceAccountToken *bool                         `json:"automountServiceAccountToken,omitempty"`
	LegacySecrets                []string                      `json:"legacySecrets,omitempty"`
	RotatedAt                    string                        `json:"rotatedAt"`
}

type saRotation struct {
	env     action.Env
	p       ServiceAccountParams
	j       *action.WriteLog
	id      string // namespace/name, for messages
	out     ServiceAccountOutput
	changed bool
	// rotatedAt is the time of the rotation as first recorded: the
	// restartedAt value, the same on every attempt.
	rotatedAt string
	warnings  []string
}

func (r *saRotation) warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

func (r *saRotation) run(ctx context.Context) error {
	notes, err := decodeNotes(r.env.Notes)
	if err != nil {
		return fmt.Errorf("rotating ServiceAccount %s: %w", r.id, err)
	}
	if err := checkAccess(ctx, r.env.Kube, r.p.Namespace, serviceAccountRules(r.p.NoRestart)); err != nil {
		return fmt.Errorf("rotating ServiceAccount %s: %w", r.id, err)
	}
	sas := r.env.Kube.CoreV1().ServiceAccounts(r.p.Namespace)
	sa, err := sas.Get(ctx, r.p.Name, metav1.GetOptions{})
	var probe string // never logged, returned, noted or put in an error
	switch {
	case apierrors.IsNotFound(err) && len(notes) > 0:
		// An earlier attempt deleted it and was killed before recreating it.
		last := notes[len(notes)-1]
		r.resumed(last)
		if err := r.recreate(ctx, last); err != nil {
			return err
		}
	case apierrors.IsNotFound(err):
		return fmt.Errorf("rotating ServiceAccount %s: %w", r.id, err)
	case err != nil:
		return fmt.Errorf("rotating ServiceAccount %s: getting it: %w", r.id, err)
	case sa.DeletionTimestamp != nil:
		return fmt.Errorf("rotating ServiceAccount %s: it is being deleted but has finalizers %v; its tokens are rejected, and it can be recreated once they are removed", r.id, sa.Finalizers)
	case rotatedBefore(sa, notes, r.env.Incident):
		r.out.OldUID, r.out.NewUID, r.out.Revoked = sa.Annotations[AnnotationRotatedFromUID], string(sa.UID), true
		r.rotatedAt = sa.Annotations[AnnotationRotatedAt]
		if len(notes) > 0 && (r.out.OldUID == "" || r.rotatedAt == "") {
			// Recreated by someone else while kir was stopped.
			r.out.OldUID, r.rotatedAt = notes[len(notes)-1].UID, notes[len(notes)-1].RotatedAt
		}
		for _, n := range notes {
			r.out.LegacySecretsDeleted = append(r.out.LegacySecretsDeleted, n.LegacySecrets...)
		}
		r.warn("ServiceAccount %s was already rotated (old UID %s), so no probe token of the old UID is left to ask TokenReview about: every token of the old UID is invalid because that UID no longer exists", r.id, r.out.OldUID)
	default:
		if probe, err = r.rotate(ctx, sa); err != nil {
			return err
		}
		for _, n := range notes { // deleted by an earlier attempt
			r.out.LegacySecretsDeleted = append(r.out.LegacySecretsDeleted, n.LegacySecrets...)
		}
	}
	slices.Sort(r.out.LegacySecretsDeleted)
	r.out.LegacySecretsDeleted = slices.Compact(r.out.LegacySecretsDeleted)

	if err := r.restart(ctx); err != nil {
		return err
	}
	if probe != "" {
		return r.confirm(ctx, probe)
	}
	return nil
}

// resumed records, from an earlier attempt's note, that the old
// ServiceAccount is gone.
func (r *saRotation) resumed(n saNote) {
	r.out.OldUID, r.out.Revoked, r.rotatedAt = n.UID, true, n.RotatedAt
	r.out.LegacySecretsDeleted = append(r.out.LegacySecretsDeleted, n.LegacySecrets...)
	r.warn("an earlier attempt deleted ServiceAccount %s (UID %s) and was interrupted: its bound tokens are invalid because that UID no longer exists, but the probe token that attempt minted is lost, so TokenReview could not be asked", r.id, n.UID)
}

// rotatedBefore reports whether sa is the result of an earlier rotation of
// this step (its old UID was noted) or of this incident.
func rotatedBefore(sa *corev1.ServiceAccount, notes []saNote, incident string) bool {
	from := sa.Annotations[AnnotationRotatedFromUID]
	for _, n := range notes {
		if n.UID == string(sa.UID) {
			return false // noted, then killed before the delete
		}
		if n.UID == from {
			return true
		}
	}
	if len(notes) > 0 {
		return true // the noted UID is gone: someone else recreated it
	}
	return from != "" && incident != "" && sa.Annotations[action.AnnotationIncident] == incident
}

// rotate revokes the tokens of sa and returns the probe token (empty in a
// dry run).
func (r *saRotation) rotate(ctx context.Context, sa *corev1.ServiceAccount) (probe string, err error) {
	legacy, err := r.legacySecrets(ctx)
	if err != nil {
		return "", err
	}
	n := saNote{
		UID: string(sa.UID), Labels: sa.Labels, Annotations: sa.Annotations, OwnerReferences: sa.OwnerReferences,
		Secrets: sa.Secrets, ImagePullSecrets: sa.ImagePullSecrets, AutomountServiceAccountToken: sa.AutomountServiceAccountToken,
		RotatedAt: r.env.Now().UTC().Format(time.RFC3339),
	}
	for _, s := range legacy {
		n.LegacySecrets = append(n.LegacySecrets, s.Name)
	}
	r.out.OldUID, r.rotatedAt = n.UID, n.RotatedAt
	if r.env.DryRun.Persists() {
		if probe, err = r.mintProbe(ctx); err != nil {
			return "", err
		}
		if r.env.Note != nil {
			if err := r.env.Note(n); err != nil {
				return "", fmt.Errorf("rotating ServiceAccount %s: noting it before deleting it: %w", r.id, err)
			}
		}
	}

	r.changed = true // from here on, even in a dry run
	for _, s := range legacy {
		err := r.j.Do(action.Write{Verb: "delete", Kind: "Secret", Namespace: r.p.Namespace, Name: s.Name}, func() (any, error) {
			err := r.env.Kube.CoreV1().Secrets(r.p.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &s.UID}, DryRun: r.env.DryRun.Opts(),
			})
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, err
		})
		if err != nil {
			return "", fmt.Errorf("rotating ServiceAccount %s: deleting legacy token Secret %s: %w", r.id, s.Name, err)
		}
		r.out.LegacySecretsDeleted = append(r.out.LegacySecretsDeleted, s.Name)
	}

	uid := sa.UID
	err = r.j.Do(action.Write{Verb: "delete", Kind: "ServiceAccount", Namespace: r.p.Namespace, Name: r.p.Name}, func() (any, error) {
		err := r.env.Kube.CoreV1().ServiceAccounts(r.p.Namespace).Delete(ctx, r.p.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid}, DryRun: r.env.DryRun.Opts(),
		})
		if apierrors.IsNotFound(err) {
			return nil, nil // someone else deleted it: the old UID is gone all the same
		}
		return nil, err
	})
	if err != nil {
		return "", fmt.Errorf("rotating ServiceAccount %s: deleting UID %s: %w", r.id, uid, err)
	}
	r.out.Revoked = r.env.DryRun.Persists()
	return probe, r.recreate(ctx, n)
}

// mintProbe asks TokenRequest for a short-lived token of the
// ServiceAccount as it is before the rotation. The token stays in memory.
func (r *saRotation) mintProbe(ctx context.Context) (string, error) {
	var token string
	err := r.j.Do(action.Write{Verb: "create", Kind: "TokenRequest", Namespace: r.p.Namespace, Name: r.p.Name}, func() (any, error) {
		tr, err := r.env.Kube.CoreV1().ServiceAccounts(r.p.Namespace).CreateToken(ctx, r.p.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](probeLifetime)},
		}, metav1.CreateOptions{})
		if err == nil {
			token = tr.Status.Token
		}
		return nil, err // the response holds the token: never recorded
	})
	if err != nil {
		return "", fmt.Errorf("rotating ServiceAccount %s: minting the probe token that confirms the revocation: %w", r.id, err)
	}
	return token, nil
}

// legacySecrets returns the metadata of the legacy token Secrets of the
// ServiceAccount, sorted by name.
func (r *saRotation) legacySecrets(ctx context.Context) ([]metav1.PartialObjectMetadata, error) {
	all, err := secretsMetadata(ctx, r.env.Kube, r.p.Namespace, metav1.ListOptions{FieldSelector: "type=" + string(corev1.SecretTypeServiceAccountToken)})
	if err != nil {
		return nil, fmt.Errorf("rotating ServiceAccount %s: listing its legacy token Secrets: %w", r.id, err)
	}
	var out []metav1.PartialObjectMetadata
	for _, s := range all {
		if s.Annotations[corev1.ServiceAccountNameKey] == r.p.Name {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b metav1.PartialObjectMetadata) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// recreate creates the ServiceAccount again from n, under a new UID.
func (r *saRotation) recreate(ctx context.Context, n saNote) error {
	want := r.successor(n)
	sas := r.env.Kube.CoreV1().ServiceAccounts(r.p.Namespace)
	var got *corev1.ServiceAccount
	err := r.j.Do(action.Write{Verb: "create", Kind: "ServiceAccount", Namespace: r.p.Namespace, Name: r.p.Name, Body: want}, func() (any, error) {
		var err error
		got, err = sas.Create(ctx, want, metav1.CreateOptions{FieldManager: action.FieldManager, DryRun: r.env.DryRun.Opts()})
		if apierrors.IsAlreadyExists(err) && r.env.DryRun == action.DryRunServer {
			// The dry-run delete left the old one in place. The
			// server answers AlreadyExists only after validation and
			// admission passed.
			return nil, nil
		}
		return got, err
	})
	switch {
	case err == nil:
	case apierrors.IsAlreadyExists(err):
		// Something recreated it between the delete and the create (the
		// ServiceAccount controller does so for "default"): make it the
		// successor kir would have created.
		cur, gerr := sas.Get(ctx, r.p.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("rotating ServiceAccount %s: getting the ServiceAccount recreated meanwhile: %w", r.id, gerr)
		}
		if string(cur.UID) == n.UID {
			return fmt.Errorf("rotating ServiceAccount %s: UID %s still exists after its deletion (finalizers %v); its tokens are rejected, and it can be recreated once it is gone", r.id, n.UID, cur.Finalizers)
		}
		upd := want.DeepCopy()
		upd.ResourceVersion, upd.UID = cur.ResourceVersion, cur.UID
		err = r.j.Do(action.Write{Verb: "update", Kind: "ServiceAccount", Namespace: r.p.Namespace, Name: r.p.Name, Body: upd}, func() (any, error) {
			got, err = sas.Update(ctx, upd, metav1.UpdateOptions{FieldManager: action.FieldManager, DryRun: r.env.DryRun.Opts()})
			return got, err
		})
		if err != nil {
			return fmt.Errorf("rotating ServiceAccount %s: updating the ServiceAccount recreated meanwhile: %w", r.id, err)
		}
	case r.env.Note != nil:
		return fmt.Errorf("rotating ServiceAccount %s: recreating it (UID %s is deleted; resuming the run recreates it): %w", r.id, n.UID, err)
	default:
		return fmt.Errorf("rotating ServiceAccount %s: recreating it (UID %s is deleted; the ServiceAccount to create is the body of this result's last write): %w", r.id, n.UID, err)
	}
	r.changed = true
	if got != nil && r.env.DryRun.Persists() {
		r.out.NewUID = string(got.UID)
	}
	return nil
}

// successor is the ServiceAccount that replaces the one noted in n.
func (r *saRotation) successor(n saNote) *corev1.ServiceAccount {
	ann := maps.Clone(n.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationRotatedFromUID] = n.UID
	ann[AnnotationRotatedAt] = n.RotatedAt
	if r.env.Incident != "" {
		ann[action.AnnotationIncident] = r.env.Incident
	}
	if r.env.Actor != "" {
		ann[AnnotationRotatedBy] = r.env.Actor
	}
	// References to the token Secrets just deleted would dangle.
	var secrets []corev1.ObjectReference
	for _, s := range n.Secrets {
		if !slices.Contains(n.LegacySecrets, s.Name) {
			secrets = append(secrets, s)
		}
	}
	return &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{
			Name: r.p.Name, Namespace: r.p.Namespace,
			Labels: maps.Clone(n.Labels), Annotations: ann, OwnerReferences: n.OwnerReferences,
		},
		Secrets:                      secrets,
		ImagePullSecrets:             n.ImagePullSecrets,
		AutomountServiceAccountToken: n.AutomountServiceAccountToken,
	}
}

// workload is a Deployment, StatefulSet or DaemonSet as restart needs it.
type workload struct {
	Workload
	selector    *metav1.LabelSelector
	template    *corev1.PodTemplateSpec
	paused      bool
	patchTarget func(ctx context.Context, body []byte, opts metav1.PatchOptions) (any, error)
}

// restart restarts the workloads that run as the ServiceAccount, as
// kubectl rollout restart does, unless that would delete a quarantined pod,
// and warns of the pods that keep running with rejected tokens.
func (r *saRotation) restart(ctx context.Context) error {
	ns, at := r.p.Namespace, r.rotatedAt
	pods, err := r.env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("rotating ServiceAccount %s: listing the pods that run as it: %w", r.id, err)
	}
	workloads, err := r.workloads(ctx)
	if err != nil {
		return err
	}
	var quarantined []corev1.Pod
	for _, p := range pods.Items {
		if _, ok := p.Labels[action.LabelQuarantine]; ok && p.DeletionTimestamp == nil {
			quarantined = append(quarantined, p)
		}
	}
	for _, w := range workloads {
		reason, err := restartBlocker(w, quarantined)
		switch {
		case err != nil:
			return fmt.Errorf("rotating ServiceAccount %s: %s %s: %w", r.id, w.Kind, w.Name, err)
		case reason != "": // the quarantined pod comes first
		case r.p.NoRestart:
			reason = "noRestart was given"
		case w.paused:
			reason = "it is paused"
		}
		if reason != "" {
			w.Reason = reason
			r.out.RestartSkipped = append(r.out.RestartSkipped, w.Workload)
			r.warn("%s %s/%s runs as ServiceAccount %s and was not restarted (%s): its pods' tokens are rejected until their kubelets refresh them (within about an hour); restart it once that is safe", w.Kind, ns, w.Name, r.p.Name, reason)
			continue
		}
		if w.template.Annotations[restartedAtAnnotation] != at {
			if err := r.patchRestart(ctx, w, at); err != nil {
				return err
			}
		}
		r.out.Restarted = append(r.out.Restarted, w.Workload)
	}

	var others []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || !runsAs(&p.Spec, r.p.Name) {
			continue
		}
		if _, ok := p.Labels[action.LabelQuarantine]; ok {
			r.warn("quarantined pod %s/%s runs as ServiceAccount %s: its token is now rejected (expected), and kir leaves the pod alive; its kubelet will fetch a token of the new ServiceAccount when it refreshes the projected token, so keep the pod isolated and delete it once evidence is collected", ns, p.Name, r.p.Name)
			continue
		}
		if !selectedByAny(workloads, &p) {
			others = append(others, p.Name)
		}
	}
	if len(others) > 0 {
		r.warn("pods %s run as ServiceAccount %s outside any Deployment, StatefulSet or DaemonSet: their tokens are rejected until their kubelets refresh them; restart them", listed(others, 10), r.p.Name)
	}
	return nil
}

// restartBlocker says why restarting w would delete a quarantined pod: a
// quarantined pod its selector still matches (contained without --detach)
// would be replaced by the rollout.
func restartBlocker(w workload, quarantined []corev1.Pod) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil {
		return "", fmt.Errorf("reading its selector: %w", err)
	}
	var names []string
	for _, p := range quarantined {
		if !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	return fmt.Sprintf("a rollout would delete quarantined pod %s; detach it first (kir contain pod --detach)", listed(names, 5)), nil
}

func (r *saRotation) patchRestart(ctx context.Context, w workload, at string) error {
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{restartedAtAnnotation: at},
	}}}}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	err = r.j.Do(action.Write{Verb: "patch", Kind: w.Kind, Namespace: r.p.Namespace, Name: w.Name, Body: patch}, func() (any, error) {
		return w.patchTarget(ctx, body, metav1.PatchOptions{FieldManager: action.FieldManager, DryRun: r.env.DryRun.Opts()})
	})
	if err != nil {
		return fmt.Errorf("rotating ServiceAccount %s: restarting %s %s: %w", r.id, w.Kind, w.Name, err)
	}
	r.changed = true
	return nil
}

// workloads lists the Deployments, StatefulSets and DaemonSets whose pods
// run as the ServiceAccount, in that order and by name.
func (r *saRotation) workloads(ctx context.Context) ([]workload, error) {
	ws, err := workloadsIn(ctx, r.env.Kube, r.p.Namespace, func(spec *corev1.PodSpec) bool { return runsAs(spec, r.p.Name) })
	if err != nil {
		return nil, fmt.Errorf("rotating ServiceAccount %s: %w", r.id, err)
	}
	return ws, nil
}

// workloadsIn lists the Deployments, StatefulSets and DaemonSets of a
// namespace whose pod template keep accepts, in that order and by name.
func workloadsIn(ctx context.Context, kube kubernetes.Interface, ns string, keep func(*corev1.PodSpec) bool) ([]workload, error) {
	apps := kube.AppsV1()
	var out []workload
	deps, err := apps.Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Deployments: %w", err)
	}
	for _, d := range deps.Items {
		out = append(out, workload{
			Workload: Workload{Kind: "Deployment", Name: d.Name}, selector: d.Spec.Selector, template: &d.Spec.Template, paused: d.Spec.Paused,
			patchTarget: func(ctx context.Context, body []byte, opts metav1.PatchOptions) (any, error) {
				return apps.Deployments(ns).Patch(ctx, d.Name, types.StrategicMergePatchType, body, opts)
			},
		})
	}
	sts, err := apps.StatefulSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing StatefulSets: %w", err)
	}
	for _, s := range sts.Items {
		out = append(out, workload{
			Workload: Workload{Kind: "StatefulSet", Name: s.Name}, selector: s.Spec.Selector, template: &s.Spec.Template,
			patchTarget: func(ctx context.Context, body []byte, opts metav1.PatchOptions) (any, error) {
				return apps.StatefulSets(ns).Patch(ctx, s.Name, types.StrategicMergePatchType, body, opts)
			},
		})
	}
	dss, err := apps.DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing DaemonSets: %w", err)
	}
	for _, d := range dss.Items {
		out = append(out, workload{
			Workload: Workload{Kind: "DaemonSet", Name: d.Name}, selector: d.Spec.Selector, template: &d.Spec.Template,
			patchTarget: func(ctx context.Context, body []byte, opts metav1.PatchOptions) (any, error) {
				return apps.DaemonSets(ns).Patch(ctx, d.Name, types.StrategicMergePatchType, body, opts)
			},
		})
	}
	out = slices.DeleteFunc(out, func(w workload) bool { return !keep(&w.template.Spec) })
	rank := map[string]int{"Deployment": 0, "StatefulSet": 1, "DaemonSet": 2}
	slices.SortFunc(out, func(a, b workload) int {
		if a.Kind != b.Kind {
			return rank[a.Kind] - rank[b.Kind]
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// runsAs reports whether pods of spec run as the ServiceAccount name.
func runsAs(spec *corev1.PodSpec, name string) bool { return serviceAccountOf(spec) == name }

func selectedByAny(ws []workload, p *corev1.Pod) bool {
	for _, w := range ws {
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			return true
		}
	}
	return false
}

// confirm polls TokenReview until it rejects the probe token.
func (r *saRotation) confirm(ctx context.Context, probe string) error {
	timeout := time.Duration(r.p.ConfirmTimeout)
	if timeout == 0 {
		timeout = defaultConfirmTimeout
	}
	var last error
	err := wait.PollUntilContextTimeout(ctx, confirmInterval, timeout, true, func(ctx context.Context) (bool, error) {
		tr, err := r.env.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: probe},
		}, metav1.CreateOptions{})
		switch {
		case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
			return false, err
		case err != nil:
			last = err // transient: ask again
			return false, nil
		}
		last = nil
		return !tr.Status.Authenticated, nil
	})
	switch {
	case err == nil:
		r.out.Confirmed = true
	case ctx.Err() != nil:
		return fmt.Errorf("rotating ServiceAccount %s: confirming the revocation: %w", r.id, ctx.Err())
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		r.warn("ServiceAccount %s is rotated (old UID %s deleted), but TokenReview could not be asked to confirm it: %v", r.id, r.out.OldUID, err)
	case last != nil:
		r.warn("ServiceAccount %s is rotated (old UID %s deleted), but TokenReview could not confirm it within %s: %v", r.id, r.out.OldUID, timeout, last)
	default:
		r.warn("ServiceAccount %s is rotated (old UID %s deleted), but TokenReview still accepted a token of the old UID after %s: API servers cache token reviews; check again later", r.id, r.out.OldUID, timeout)
	}
	return nil
}

// decodeNotes reads the notes of earlier attempts.
func decodeNotes(raw []json.RawMessage) ([]saNote, error) {
	out := make([]saNote, 0, len(raw))
	for i, b := range raw {
		var n saNote
		if err := json.Unmarshal(b, &n); err != nil || n.UID == "" {
			return nil, fmt.Errorf("reading note %d of an earlier attempt: not a rotation note: %v", i+1, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// listed joins names, at most max of them.
func listed(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
