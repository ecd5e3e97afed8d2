package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"kir.dev/kir/action"
)

// respond confirms one pod's isolation, then cuts its open sessions, in
// that order: a cut before the policy holds only makes the attacker
// reconnect. Every step ends in the pod's report Lease.
func (a *Agent) respond(ctx context.Context, pod *corev1.Pod, seenAt time.Time) {
	log := a.cfg.Log.With("pod", pod.Namespace+"/"+pod.Name)
	r := &Report{Namespace: pod.Namespace, Pod: pod.Name, UID: string(pod.UID), Node: a.cfg.Node, SeenAt: seenAt, State: StateProbing}
	// The pod's namespace first, and one probe at once: kir labels the
	// pod before it writes the policy, so this probe is the "before".
	var ns podNS
	var nsErr error
	if !pod.Spec.HostNetwork {
		if ns, nsErr = a.openNetns(ctx, pod, r); ns != nil {
			defer ns.Close()
			a.probeAll(ctx, ns, r)
		}
	}
	pol, err := a.policy(ctx, pod)
	if err != nil {
		// No policy of kir's selects the label: someone else put it
		// there, or the run stopped between the two writes. Nothing to
		// confirm, and nothing the agent may cut.
		log.Warn("no quarantine policy of kir's for the labelled pod: nothing done", "err", err)
		return
	}
	r.PolicyUID = string(pol.UID)
	if old := a.oldReport(ctx, pod); old != nil && old.PolicyUID == r.PolicyUID {
		if old.Final() && old.Request == a.requestOf(pod.UID) {
			return // answered before this agent restarted
		}
		// What an earlier answer saw before the policy still holds: this
		// run's first probe comes after it.
		r.ReachableBefore = r.ReachableBefore || old.ReachableBefore
	}
	var t *taking
	switch {
	case pod.Spec.HostNetwork:
		r.State = StateSkipped
		r.Notes = append(r.Notes, "the pod uses the host's network: no NetworkPolicy isolates it, and its sessions are the node's; nothing confirmed or cut")
		t = a.takeVolatile(ctx, pod, pol, nil).apply(r)
	case ns == nil:
		r.State = StateSkipped
		r.Notes = append(r.Notes, fmt.Sprintf("the pod's network namespace was not found on the node: %v", nsErr))
		t = a.takeVolatile(ctx, pod, pol, nil).apply(r)
	default:
		a.publish(ctx, pod, r)
		var ok bool
		if t, ok = a.confirmAndCut(ctx, pod, pol, ns, r); !ok {
			return // released, or the agent stops: no verdict
		}
	}
	a.finish(ctx, pod, r, log)
	a.finishCapture(ctx, pod, t, r)
}

// captureWait bounds how long the cut waits for the volatile capture: a
// pod can make its capture slow (huge executables on a stalling file
// system), never its cut.
const captureWait = 20 * time.Second

// confirmAndCut takes the volatile capture while it confirms the
// isolation, then cuts the pod's sessions once both are done. It returns
// false when ctx ended first.
func (a *Agent) confirmAndCut(ctx context.Context, pod *corev1.Pod, pol *networkingv1.NetworkPolicy, ns podNS, r *Report) (*taking, bool) {
	capCtx, cancelCap := context.WithCancel(ctx)
	defer cancelCap()
	captured := make(chan volatileTaken, 1)
	go func() { captured <- a.takeVolatile(capCtx, pod, pol, ns) }()
	decided := a.verdict(ctx, pod, ns, r)
	var t *taking
	select {
	case got := <-captured:
		t = got.apply(r)
	case <-time.After(captureWait):
		r.Notes = append(r.Notes, fmt.Sprintf("the capture of the pod's processes and sockets took longer than %s: the sessions were cut without it, and it is dropped", captureWait))
		// Stopped, and waited for a little: it uses the namespace that
		// respond closes when it returns.
		cancelCap()
		select {
		case got := <-captured:
			if got.t != nil {
				_ = os.RemoveAll(got.t.c.dir)
			}
		case <-time.After(5 * time.Second):
			a.cfg.Log.Error("a capture did not stop when cancelled", "pod", pod.Namespace+"/"+pod.Name)
		}
	}
	if !decided {
		if t != nil { // released, or the agent stops: nobody will fetch it
			_ = os.RemoveAll(t.c.dir)
		}
		return nil, false
	}
	if r.State != StateNotEnforced {
		a.publish(ctx, pod, r) // kir waits for this much; the cut follows
		pol = a.current(ctx, pol)
		r.Cut = a.cut(ctx, pod, ns, pol.Annotations[action.AnnotationSessions] == action.SessionsKeep)
	}
	return t, true
}

// volatileTaken is the volatile capture and the freeze that follows it.
type volatileTaken struct {
	t      *taking
	rec    *CaptureRecord
	frozen *FreezeRecord
}

// takeVolatile takes the volatile capture, then freezes the pod's
// containers if its policy asks: what they were doing is on record, and
// from now on they do nothing.
func (a *Agent) takeVolatile(ctx context.Context, pod *corev1.Pod, pol *networkingv1.NetworkPolicy, ns podNS) volatileTaken {
	var v volatileTaken
	v.t, v.rec = a.captureVolatile(ctx, pod, ns)
	if freezeAsked(a.current(ctx, pol)) {
		v.frozen = a.freeze(ctx, pod)
	}
	return v
}

// apply records v in the report and returns the capture to finish.
func (v volatileTaken) apply(r *Report) *taking {
	r.Capture, r.Frozen = v.rec, v.frozen
	return v.t
}

// openNetns finds and holds the pod's network namespace.
func (a *Agent) openNetns(ctx context.Context, pod *corev1.Pod, r *Report) (podNS, error) {
	found, err := a.netns(ctx, pod)
	if err != nil {
		return nil, err
	}
	if found.others > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d other network namespaces are held by the pod's processes (unshare): they have no way out and were neither probed nor cut", found.others))
	}
	return a.cfg.net.open(found.path)
}

// verdict probes until the policy holds or the agent gives up, and sets
// the report's state: enforced, unconfirmable (the pod never reached the
// target, so the probe cannot tell) or not enforced. It returns false
// when ctx ended first.
func (a *Agent) verdict(ctx context.Context, pod *corev1.Pod, ns podNS, r *Report) bool {
	if !a.confirm(ctx, pod, ns, r) {
		if ctx.Err() != nil {
			return false
		}
		r.State = StateNotEnforced
		r.Notes = append(r.Notes, fmt.Sprintf("after %s the pod still reached what its quarantine policy denies: the network plugin does not enforce NetworkPolicy here, or not yet; its sessions were not cut", a.cfg.ProbeFor))
		return true
	}
	r.State = StateEnforced
	if !r.ReachableBefore {
		r.State = StateUnconfirmable
		r.Notes = append(r.Notes, "the pod never reached the probe target, not even before its policy: the probe shows it cut off from its node, not that its policy is enforced; its sessions were cut all the same")
	}
	return true
}

// policy waits for the quarantine policy kir applies right after the
// label, and returns it once it is kir's and selects the label's value.
func (a *Agent) policy(ctx context.Context, pod *corev1.Pod) (*networkingv1.NetworkPolicy, error) {
	value := action.QuarantineValue(pod.UID)
	name := action.PolicyName(value)
	var pol *networkingv1.NetworkPolicy
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := a.cfg.Kube.NetworkingV1().NetworkPolicies(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			a.cfg.Log.Debug("reading the quarantine policy", "err", err)
			return false, nil
		case got.Labels[action.LabelManagedBy] != action.ManagedByKir ||
			got.Spec.PodSelector.MatchLabels[action.LabelQuarantine] != value:
			return false, fmt.Errorf("NetworkPolicy %s/%s is not kir's quarantine policy of the pod", pod.Namespace, name)
		}
		pol = got
		return true, nil
	})
	return pol, err
}

// current reads pol again, for the decisions that rest on kir's record
// on it (cut the sessions, freeze): the agent first read it as soon as
// the label appeared, and a policy someone created first under kir's name
// carries their annotations until kir's own apply and patch land, right
// after. The first read stands if this one fails or finds another object.
func (a *Agent) current(ctx context.Context, pol *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	if pol == nil {
		return nil
	}
	got, err := a.cfg.Kube.NetworkingV1().NetworkPolicies(pol.Namespace).Get(ctx, pol.Name, metav1.GetOptions{})
	if err != nil || got.UID != pol.UID || got.Labels[action.LabelManagedBy] != action.ManagedByKir {
		return pol
	}
	return got
}

// confirmRounds is how many rounds in a row must see the pod blocked
// while the host gets through: one probe that timed out proves nothing on
// a loaded node, where a stall can outlast a probe's timeout.
const confirmRounds = 3

// confirm probes from inside the pod until the policy holds: every
// target the host reaches, the pod does not, confirmRounds rounds in a
// row. It records the moment the first of them began, on the node's
// clock, from when the label was seen.
func (a *Agent) confirm(ctx context.Context, pod *corev1.Pod, ns podNS, r *Report) bool {
	deadline := time.After(a.cfg.ProbeFor)
	tick := time.NewTicker(a.cfg.ProbeEvery)
	defer tick.Stop()
	var first time.Time
	held, rounds := 0, 0
	for {
		began := a.cfg.Now().UTC()
		enforced, records := a.probeAll(ctx, ns, r)
		r.Probes = records
		switch {
		case !enforced:
			held = 0
		case held == 0:
			first, held = began, 1
		default:
			held++
		}
		if held == confirmRounds {
			r.EnforcedAt, r.EnforcedAfterMS = &first, max(0, first.Sub(r.SeenAt).Milliseconds())
			return true
		}
		if rounds++; rounds == 1 {
			a.publish(ctx, pod, r) // what the first probe saw, for whoever waits
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
}

// probeAll probes every target once from the pod and, at the same time,
// from the host: a stall of the target shows in both.
func (a *Agent) probeAll(ctx context.Context, ns podNS, r *Report) (enforced bool, records []ProbeRecord) {
	enforced = true
	for _, t := range a.targets {
		var control, controlDetail string
		done := make(chan struct{})
		go func() {
			defer close(done)
			control, controlDetail = a.cfg.net.probe(ctx, nil, t, a.cfg.ProbeTimeout)
		}()
		fromPod, podDetail := a.cfg.net.probe(ctx, ns, t, a.cfg.ProbeTimeout)
		<-done
		records = append(records, ProbeRecord{Target: t.String(), FromPod: join(fromPod, podDetail), Control: join(control, controlDetail)})
		if fromPod == outcomeConnected {
			r.ReachableBefore = true
		}
		// A target the host cannot reach, or a probe that could not run,
		// proves nothing either way.
		if fromPod == outcomeConnected || fromPod == outcomeFailed || control != outcomeConnected {
			enforced = false
		}
	}
	return enforced, records
}

// cut destroys the pod's open sessions, deletes their conntrack entries
// on the host, then checks again.
func (a *Agent) cut(ctx context.Context, pod *corev1.Pod, ns podNS, keep bool) *CutRecord {
	c := &CutRecord{Kept: keep}
	defer func() { c.At = a.cfg.Now().UTC() }()
	if keep {
		n, err := a.cfg.net.sessions(ctx, ns)
		c.Remaining = n
		if err != nil {
			c.Errors = append(c.Errors, "counting the sessions kept: "+err.Error())
		}
		return c
	}
	tcp, udp, errs, err := a.cfg.net.cut(ctx, ns)
	c.TCP, c.UDP, c.Errors = tcp, udp, errs
	if err != nil {
		c.Errors = append(c.Errors, "destroying the pod's sockets: "+err.Error())
	}
	ips := podIPs(pod)
	if c.Flows, err = a.cfg.net.deleteFlows(ctx, ips); err != nil {
		c.Errors = append(c.Errors, "deleting the pod's conntrack entries: "+err.Error())
	}
	if c.Flows == 0 && c.TCP+c.UDP > 0 && err == nil {
		c.Notes = append(c.Notes, "sessions were cut but the host's conntrack held no entry of the pod's IPs: a network plugin that tracks connections itself (eBPF) keeps its own table, where the conntrack step does not apply")
	}
	// The re-check: what is left is what the attacker reopened through a
	// hole in the policy, or what the kernel refused to destroy.
	if n, err := a.cfg.net.sessions(ctx, ns); err != nil {
		c.Errors = append(c.Errors, "re-checking the pod's sockets: "+err.Error())
	} else {
		c.Remaining += n
	}
	if n, err := a.cfg.net.countFlows(ctx, ips); err != nil {
		c.Errors = append(c.Errors, "re-checking conntrack: "+err.Error())
	} else {
		c.Remaining += n
	}
	return c
}

func join(outcome, detail string) string {
	if detail == "" {
		return outcome
	}
	return outcome + ": " + detail
}

func podIPs(pod *corev1.Pod) []netip.Addr {
	var ips []netip.Addr
	for _, p := range pod.Status.PodIPs {
		if ip, err := netip.ParseAddr(p.IP); err == nil {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		if ip, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// finish publishes the final report and records an Event on the pod.
func (a *Agent) finish(ctx context.Context, pod *corev1.Pod, r *Report, log interface {
	Info(string, ...any)
}) {
	a.publish(ctx, pod, r)
	msg := summary(r)
	log.Info(msg)
	a.event(ctx, pod, r.State, msg)
}

// summary says in one line what the agent found and did.
func summary(r *Report) string {
	switch r.State {
	case StateEnforced:
		s := fmt.Sprintf("isolation enforced after %d ms", r.EnforcedAfterMS)
		switch {
		case r.Cut == nil:
		case r.Cut.Kept:
			s += fmt.Sprintf("; open sessions kept as asked (%d)", r.Cut.Remaining)
		default:
			s += fmt.Sprintf("; cut %d open sessions (%d TCP, %d UDP) and %d conntrack entries; %d remain", r.Cut.Sessions(), r.Cut.TCP, r.Cut.UDP, r.Cut.Flows, r.Cut.Remaining)
		}
		return s
	case StateNotEnforced:
		return "isolation NOT enforced: " + lastNote(r)
	case StateUnconfirmable:
		return fmt.Sprintf("isolation could not be confirmed (%s); cut %d open sessions", lastNote(r), r.Cut.Sessions())
	default:
		return "nothing confirmed or cut: " + lastNote(r)
	}
}

func lastNote(r *Report) string {
	if len(r.Notes) == 0 {
		return ""
	}
	return r.Notes[len(r.Notes)-1]
}
