package tamper

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
)

// releasePoll is how soon a pod being released is checked again, to
// forget it once released.
const releasePoll = time.Second

func labelsKir() labels.Selector {
	return labels.SelectorFromSet(labels.Set{action.LabelManagedBy: action.ManagedByKir})
}

func typesUID(s string) types.UID { return types.UID(s) }

// check checks one quarantined pod and restores what was lifted. again,
// when positive, asks for another check that soon.
//
// It reads the policy and the pod first and the release mark last, just
// before acting: kir release writes its mark before it removes anything,
// so whatever removal the guard saw is either covered by a mark it then
// reads, or not release's doing.
func (g *guard) check(ctx context.Context, k key) (again time.Duration, err error) {
	if q, pod, ok := g.intact(k); ok {
		g.checkAdmitting(ctx, q, pod)
		return 0, nil
	}
	q, known := g.mem.get(k.uid)
	if !known || q.Namespace != k.ns {
		// A policy labelled as kir's and named after a pod, with no memory
		// of kir's: anyone who may create policies in that namespace could
		// have written it, and guarding it would label and isolate a pod
		// kir never contained. Its memory, once its containment writes
		// it, queues the pod again. Likewise a policy named after a
		// quarantined pod in another namespace than the pod's (the pod's
		// label says its UID): it is not the pod's quarantine. Read from
		// the cache: a forger's policies cost no request.
		if pol, err := g.policies.NetworkPolicies(k.ns).Get(action.PolicyName(action.QuarantineValue(k.uid))); err == nil {
			return g.unremembered(ctx, pol), nil
		}
		return 0, nil
	}
	pol, err := g.policy(ctx, k)
	if err != nil {
		return 0, err
	}
	pod, err := g.o.Kube.CoreV1().Pods(q.Namespace).Get(ctx, q.Name, metav1.GetOptions{})
	// The label-selected watch says "deleted" for a removed label too:
	// this GET tells that from a pod truly gone.
	gone := apierrors.IsNotFound(err) || (err == nil && pod.UID != q.UID)
	if err != nil && !gone {
		return 0, fmt.Errorf("reading pod %s/%s: %w", q.Namespace, q.Name, err)
	}
	mark, err := g.holdingMark(ctx, k.uid, pol)
	if err != nil {
		return 0, err
	}
	switch {
	case mark != nil:
		if gone {
			pod = nil
		}
		return g.releasing(ctx, q, pod, pol, mark)
	case gone:
		// Its policy goes with it, by its owner reference.
		g.o.Log.Info("tamper guard: a quarantined pod was deleted; no longer guarded", "namespace", q.Namespace, "pod", q.Name, "uid", q.UID)
		return 0, g.mem.forget(ctx, q.UID)
	case pod.DeletionTimestamp != nil:
		return 0, nil // going: nothing to restore on it
	}
	g.restore(ctx, q, pod, pol)
	return 0, nil
}

// maxUnremembered bounds the policies and namespaces unremembered keeps
// track of; unrememberedEvery is how often it reports one per namespace.
const (
	maxUnremembered   = 1024
	unrememberedEvery = time.Minute
)

// unremembered reports, once, a kir quarantine policy that has stood for
// Options.Unremembered with no memory: a forgery, or a containment that
// could not write its memory. Until then it asks to be checked again. The
// finding names the pod the policy names, and no incident: the policy's
// record is whoever wrote it.
func (g *guard) unremembered(ctx context.Context, pol *networkingv1.NetworkPolicy) (again time.Duration) {
	q, _, err := contain.ReadQuarantine(pol)
	if err != nil {
		return 0 // kir-labelled, but no quarantine policy of a pod
	}
	now := g.o.Now()
	g.mu.Lock()
	if len(g.unknown) >= maxUnremembered {
		clear(g.unknown)
	}
	u, seen := g.unknown[pol.UID]
	if !seen {
		u = unknownPolicy{first: now}
		g.unknown[pol.UID] = u
	}
	wait := u.first.Add(g.o.Unremembered).Sub(now)
	report := !u.reported && wait <= 0
	quiet := false
	if report {
		u.reported = true
		g.unknown[pol.UID] = u
		// One report per namespace every unrememberedEvery: a forger
		// recreating policies under new names or UIDs makes no more.
		if last, ok := g.unknownNS[pol.Namespace]; ok && now.Sub(last) < unrememberedEvery {
			quiet = true
		} else {
			if len(g.unknownNS) >= maxUnremembered {
				clear(g.unknownNS)
			}
			g.unknownNS[pol.Namespace] = now
		}
	}
	g.mu.Unlock()
	if quiet {
		g.o.Log.Info("tamper guard: another NetworkPolicy labelled as kir's quarantine without memory in the same namespace; reported once a minute",
			"namespace", pol.Namespace, "policy", pol.Name)
		return 0
	}
	switch {
	case report:
		f := Finding{Kind: PolicyUnremembered, Namespace: q.Namespace, Pod: q.Name, UID: string(q.UID),
			Object: "NetworkPolicy " + pol.Namespace + "/" + pol.Name, Manager: manager(pol.ManagedFields),
			What: fmt.Sprintf("is labelled as kir's quarantine, and kir's namespace holds no memory of it (Lease %s/%s) %s after the guard first saw it", g.o.Namespace, MemoryName(q.UID), g.o.Unremembered)}
		g.announce(ctx, f)
		return 0
	case wait > 0:
		return wait
	}
	return 0
}

// restore writes back what was lifted of q, and reports the policies that
// re-open it.
func (g *guard) restore(ctx context.Context, q contain.Quarantine, pod *corev1.Pod, pol *networkingv1.NetworkPolicy) {
	g.checkLabel(ctx, q, pod)
	g.checkPolicy(ctx, q, pod, pol)
	g.checkAdmitting(ctx, q, pod)
}

// intact says, from the watches' caches alone, whether a known
// quarantine is as kir wrote it and has no release mark: the resync of a
// healthy quarantine costs no request. Anything else is read from the API
// server (and a stale release mark dropped there).
func (g *guard) intact(k key) (contain.Quarantine, *corev1.Pod, bool) {
	q, known := g.mem.get(k.uid)
	g.mu.Lock()
	marked := g.marked[k.uid]
	g.mu.Unlock()
	if !known || !q.Labelled() || marked {
		return q, nil, false
	}
	pol, err := g.policies.NetworkPolicies(k.ns).Get(q.PolicyName())
	if err != nil || len(q.Drift(pol)) > 0 {
		return q, nil, false
	}
	pod, err := g.pods.Pods(k.ns).Get(q.Name)
	if err != nil || pod.UID != q.UID || pod.DeletionTimestamp != nil || pod.Labels[action.LabelQuarantine] != q.Value() {
		return q, nil, false
	}
	return q, pod, true
}

// mark is the release mark of uid, if kir release left one.
func (g *guard) mark(ctx context.Context, uid types.UID) (*coordinationv1.Lease, error) {
	l, err := g.o.Kube.CoordinationV1().Leases(g.o.Namespace).Get(ctx, contain.ReleasingLease(uid), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the release mark %s: %w", contain.ReleasingLease(uid), err)
	}
	return l, nil
}

// holdingMark is the release mark of uid that holds for the quarantine
// whose policy is pol; a stale one is deleted.
func (g *guard) holdingMark(ctx context.Context, uid types.UID, pol *networkingv1.NetworkPolicy) (*coordinationv1.Lease, error) {
	mark, err := g.mark(ctx, uid)
	if err != nil || mark == nil {
		return nil, err
	}
	if why := stale(mark, pol, g.o.Now()); why != "" {
		return nil, g.dropMark(ctx, mark, why)
	}
	return mark, nil
}

// stale says why a release mark no longer holds for a quarantine whose
// policy is there ("" when it holds): the policy was made after the mark
// (contained again since), or the mark is older than ReleasingFor (the
// release failed before it deleted the policy). Either way the pod is
// still isolated: guarding it again undoes no release.
func stale(mark *coordinationv1.Lease, pol *networkingv1.NetworkPolicy, now time.Time) string {
	switch {
	case pol == nil:
		return ""
	case pol.CreationTimestamp.After(mark.CreationTimestamp.Time):
		return "the pod was contained again after it"
	case !now.Before(mark.CreationTimestamp.Add(contain.ReleasingFor)):
		return fmt.Sprintf("older than %s and the policy is still there (the release did not finish)", contain.ReleasingFor)
	}
	return ""
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// releasing stands down for a pod kir release is releasing, and forgets
// it once its policy is gone: release deletes the policy first, and that
// is what lifts the isolation; the label it removes next isolates
// nothing alone.
func (g *guard) releasing(ctx context.Context, q contain.Quarantine, pod *corev1.Pod, pol *networkingv1.NetworkPolicy, mark *coordinationv1.Lease) (time.Duration, error) {
	if pol != nil {
		g.liftedWhileMarked(ctx, q, pod)
		return releasePoll, nil
	}
	g.mu.Lock()
	delete(g.markState, q.UID)
	g.mu.Unlock()
	g.o.Log.Info("tamper guard: released by kir release; no longer guarded", "namespace", q.Namespace, "pod", q.Name, "uid", q.UID, "by", ptrString(mark.Spec.HolderIdentity))
	if err := g.mem.forget(ctx, q.UID); err != nil {
		return 0, err
	}
	return 0, g.dropMark(ctx, mark, "")
}

// liftedWhileMarked guards a pod whose release is marked but whose
// policy still stands. Release deletes the policy before it touches the
// label, and never changes the policy, so a label removed or changed, or
// a policy's spec changed, while the policy stands is not release's
// doing; and a release that failed leaves its mark for ReleasingFor, a
// window in which both would otherwise be anyone's to lift (the policy
// selects the pod by the label). The policy is read again after the pod:
// the one read before may have been deleted by release since, and the
// label with it. Its spec is restored on that object only (never created
// again), and policies that admit traffic are reported as ever. (A
// release that starts again between that read and the label's restore
// may leave the label on its released pod: it isolates nothing without
// the policy.)
func (g *guard) liftedWhileMarked(ctx context.Context, q contain.Quarantine, pod *corev1.Pod) {
	if pod == nil || pod.DeletionTimestamp != nil {
		return
	}
	pol, err := g.policy(ctx, key{q.Namespace, q.UID})
	if err != nil || pol == nil || pol.DeletionTimestamp != nil {
		return
	}
	g.checkAdmitting(ctx, q, pod) // each admitting policy once
	// Polled every releasePoll: act once on each state of the pod and
	// the policy, so that a restore that fails is not announced again
	// every second.
	state := pod.ResourceVersion + "/" + pol.ResourceVersion
	g.mu.Lock()
	seen := g.markState[q.UID] == state
	g.markState[q.UID] = state
	g.mu.Unlock()
	if seen {
		return
	}
	g.checkLabel(ctx, q, pod)
	if !apiequality.Semantic.DeepEqual(q.Policy().Spec, pol.Spec) {
		f := g.finding(q, PolicyChanged, "NetworkPolicy "+q.Namespace+"/"+q.PolicyName(), strings.Join(q.Drift(pol), "; "))
		f.Manager = manager(pol.ManagedFields)
		f.Restored, f.Error = outcome(contain.RestorePolicySpec(ctx, g.o.Kube, q, pol))
		g.announce(ctx, f)
	}
}

// dropMark deletes a release mark: done with, or stale (why).
func (g *guard) dropMark(ctx context.Context, mark *coordinationv1.Lease, why string) error {
	if why != "" {
		g.o.Log.Warn("tamper guard: a release mark no longer holds; the quarantine is guarded again", "lease", mark.Name, "by", ptrString(mark.Spec.HolderIdentity), "why", why)
	}
	uid := mark.UID
	err := g.o.Kube.CoordinationV1().Leases(g.o.Namespace).Delete(ctx, mark.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting the release mark %s: %w", mark.Name, err)
	}
	return nil
}

// policy reads kir's policy of the pod from the API server (the cache
// may lag a write the guard itself just made); nil when there is none.
func (g *guard) policy(ctx context.Context, k key) (*networkingv1.NetworkPolicy, error) {
	name := action.PolicyName(action.QuarantineValue(k.uid))
	pol, err := g.o.Kube.NetworkingV1().NetworkPolicies(k.ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading NetworkPolicy %s/%s: %w", k.ns, name, err)
	}
	return pol, nil
}

// checkLabel restores the pod's quarantine label when it was removed or
// changed. A fallback quarantine has no label: nothing to check.
func (g *guard) checkLabel(ctx context.Context, q contain.Quarantine, pod *corev1.Pod) {
	v, ok := pod.Labels[action.LabelQuarantine]
	if !q.Labelled() || v == q.Value() {
		return
	}
	f := g.finding(q, LabelRemoved, "Pod "+q.Namespace+"/"+q.Name, "has no quarantine label "+action.LabelQuarantine)
	if ok {
		f.Kind, f.What = LabelChanged, fmt.Sprintf("has quarantine label %s=%q, not the pod's own value", action.LabelQuarantine, truncate(v, 64))
	}
	f.Manager = manager(pod.ManagedFields)
	f.Restored, f.Error = outcome(contain.RestoreLabel(ctx, g.o.Kube, q))
	g.announce(ctx, f)
}

// checkPolicy restores kir's policy when it was deleted or changed. A
// policy that isolates the pod at least as tightly as the memory says
// (kir contain again, which writes a narrower policy before its memory
// and a wider memory before its policy) is left as it is: nothing was
// lifted. The guard learns nothing from it: only kir contain writes the
// memory.
func (g *guard) checkPolicy(ctx context.Context, q contain.Quarantine, pod *corev1.Pod, pol *networkingv1.NetworkPolicy) {
	if pol == nil {
		g.restorePolicy(ctx, q, nil, PolicyDeleted, "was deleted")
		return
	}
	drift := q.Drift(pol)
	if len(drift) == 0 {
		return
	}
	// Tighter, and still kir's by its labels and owner: the node agent
	// finds kir's policies by those labels, and the owner reference takes
	// the policy with the pod.
	if n, problems, err := contain.ReadQuarantine(pol); err == nil && len(problems) == 0 && q.Narrows(n, pod.Labels) && len(q.MetaDrift(pol)) == 0 {
		return
	}
	g.restorePolicy(ctx, q, pol, PolicyChanged, strings.Join(drift, "; "))
}

func (g *guard) restorePolicy(ctx context.Context, q contain.Quarantine, pol *networkingv1.NetworkPolicy, kind Kind, what string) {
	f := g.finding(q, kind, "NetworkPolicy "+q.Namespace+"/"+q.PolicyName(), what)
	f.Manager = noManager
	if pol != nil {
		f.Manager = manager(pol.ManagedFields)
	}
	f.Restored, f.Error = outcome(contain.RestorePolicy(ctx, g.o.Kube, q, pol))
	g.announce(ctx, f)
}

// checkAdmitting reports the other policies that select the pod and
// allow it traffic: each policy object once for each kind of traffic it
// allows, whatever else changes in it. Not once per resourceVersion: an
// attacker who rewrites an annotation of an allow-all policy in a loop
// would otherwise make each write an Event, a notification and a custody
// entry in the incident's evidence.
func (g *guard) checkAdmitting(ctx context.Context, q contain.Quarantine, pod *corev1.Pod) {
	pols, err := g.policies.NetworkPolicies(q.Namespace).List(labels.Everything())
	if err != nil {
		g.o.Log.Error("tamper guard: listing NetworkPolicies", "namespace", q.Namespace, "err", err)
		return
	}
	items := make([]networkingv1.NetworkPolicy, len(pols))
	byName := map[string]*networkingv1.NetworkPolicy{}
	for i, p := range pols {
		items[i], byName[p.Name] = *p, p
	}
	podLabels := maps.Clone(pod.Labels)
	if q.Labelled() {
		if podLabels == nil {
			podLabels = map[string]string{}
		}
		podLabels[action.LabelQuarantine] = q.Value() // as restored
	}
	for _, w := range contain.Admitting(items, podLabels, q.PolicyName()) {
		p := byName[w.Name]
		id := string(q.UID) + "/" + w.Name + "/" + string(p.UID) + "/" + strings.Join(w.Allows, "+")
		g.mu.Lock()
		seen := g.admitted[id]
		g.admitted[id] = true
		g.mu.Unlock()
		if seen {
			continue
		}
		f := g.finding(q, PolicyAdmits, "NetworkPolicy "+q.Namespace+"/"+w.Name,
			fmt.Sprintf("selects the quarantined pod and allows %s: NetworkPolicies are additive, so that traffic flows despite kir's policy", strings.Join(w.Allows, " and ")))
		f.Manager = manager(p.ManagedFields)
		g.announce(ctx, f)
	}
}

func (g *guard) finding(q contain.Quarantine, kind Kind, object, what string) Finding {
	return Finding{Kind: kind, Namespace: q.Namespace, Pod: q.Name, UID: string(q.UID),
		Incident: q.Record[action.AnnotationIncident], Object: object, What: what}
}

// outcome is a restoration's result, as a finding says it.
func outcome(err error) (restored bool, msg string) {
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
