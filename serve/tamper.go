package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/evidence"
	"kir.dev/kir/fence"
	"kir.dev/kir/notify"
	"kir.dev/kir/tamper"
)

// The tamper guard (package tamper) runs inside kir serve: one replica's
// at a time (a Lease in kir's namespace). Serve adds to each finding what
// only it has: the metric, the notification (the routing's outbox), and
// a signed custody entry in every sealed bundle of the quarantine's
// incident under its evidence directory.

// startTamper starts the guard, when Options.Tamper asks for it, until ctx
// ends.
func (s *server) startTamper(ctx context.Context) {
	if s.o.Tamper == nil {
		return
	}
	o := *s.o.Tamper
	if o.Kube == nil {
		o.Kube = s.o.Env.Kube
	}
	if o.Namespace == "" {
		o.Namespace = s.o.Env.KirNamespace
	}
	if o.Identity == "" {
		o.Identity = s.replicaName()
	}
	if o.Log == nil {
		o.Log = s.o.Log
	}
	if o.Fence == nil {
		o.Fence = fenceCheck(o.Kube, o.Namespace)
	}
	next := o.Report
	o.Report = func(ctx context.Context, f tamper.Finding) {
		s.tampered(ctx, f)
		if next != nil {
			next(ctx, f)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := tamper.Run(ctx, o); err != nil {
			s.o.Log.Error("the tamper guard stopped: lifted quarantines are not restored", "err", err)
		}
	}()
}

// replicaName names this replica: its claims' or records' identity, or
// the host's name.
func (s *server) replicaName() string {
	if id := s.identity(); id != "" {
		return id
	}
	if s.rec != nil && s.rec.o.Identity != "" {
		return s.rec.o.Identity
	}
	h, _ := os.Hostname()
	return h
}

// tampered counts, notifies and records in the incident's evidence one
// finding of the guard.
func (s *server) tampered(ctx context.Context, f tamper.Finding) {
	result := "reported"
	switch {
	case f.Error != "":
		result = "failed"
	case f.Restored:
		result = "restored"
	}
	s.o.Metrics.Tamper.WithLabelValues(string(f.Kind), result).Inc()
	if s.outbox != nil {
		ev := notify.Event{Kind: notify.KindTampered, Run: f.Incident, Incident: f.Incident, Reason: f.Line(), Time: f.At}
		if ev.Run == "" {
			ev.Run = "tamper"
		}
		if f.Pod != "" {
			ev.Pods = []notify.Pod{{Namespace: f.Namespace, Name: f.Pod}}
		}
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := s.outbox.Enqueue(nctx, ev); err != nil {
			s.o.Log.Error("queuing a tamper notification", "kind", f.Kind, "err", err)
		}
		cancel()
	}
	if n, ok := s.tamperLimit.allow(f, s.o.Now()); ok {
		s.custodyOfTamper(tamperEntry{Finding: f, Suppressed: n})
	}
}

// tamperEvery is how often one pod's findings of one kind go into its
// evidence: an attacker who lifts the label in a loop makes a finding
// each time; the custody log records one per period, and how many were
// left out since (the log line and the metric count every one).
const tamperEvery = 10 * time.Second

// maxTamperKeys is how many pods and kinds tamperLimiter remembers before
// it forgets those quiet for tamperEvery.
const maxTamperKeys = 4096

// tamperLimiter lets one finding per pod and kind through per
// tamperEvery, and counts the others.
type tamperLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// allow reports whether f goes into the evidence now, and how many of its
// pod's and kind's findings did not since the last that did.
func (l *tamperLimiter) allow(f tamper.Finding, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	key := f.UID + "/" + string(f.Kind)
	if len(l.last) >= maxTamperKeys {
		// Pods named in forged policies need not exist: forget the
		// quiet ones rather than grow without bound.
		for k, t := range l.last {
			if now.Sub(t) >= tamperEvery && l.held[k] == 0 {
				delete(l.last, k)
				delete(l.held, k)
			}
		}
	}
	if last, ok := l.last[key]; ok && now.Sub(last) < tamperEvery {
		l.held[key]++
		return 0, false
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return n, true
}

// tamperEntry is a finding as the custody log holds it.
type tamperEntry struct {
	tamper.Finding
	// Suppressed counts the findings of the same pod and kind left out of
	// the log since the last one in it (tamperEvery).
	Suppressed int `json:"suppressed,omitempty"`
}

// custodyOfTamper appends f, signed with serve's key when it has one, to
// the custody log of every sealed bundle of f's incident: the auditor of
// the incident's evidence reads that the quarantine was lifted, when, and
// what kir did. A quarantine contained elsewhere (a responder's laptop)
// has no bundle here, and the log line says so.
func (s *server) custodyOfTamper(f tamperEntry) {
	if f.Incident == "" || s.o.Engine.Evidence == "" {
		return
	}
	bundles := incidentBundles(s.o.Engine.Evidence, f.Incident, collect.PodDir(f.Namespace, f.Pod))
	if len(bundles) == 0 {
		s.o.Log.Warn("no sealed evidence of the incident here to record a tamper finding in", "incident", f.Incident, "evidence", s.o.Engine.Evidence)
		return
	}
	var signer evidence.Signer
	if s.o.Key != "" {
		var err error
		if signer, err = evidence.LoadSigner(s.o.Key); err != nil {
			s.o.Log.Error("loading the evidence key to record a tamper finding", "err", err)
			return
		}
	}
	e := evidence.Entry{Action: "tamper-" + string(f.Kind), Actor: s.o.Env.Actor, Version: s.o.Env.Version, Detail: f}
	for _, b := range bundles {
		if err := evidence.AppendCustody(b, e, signer); err != nil {
			s.o.Log.Error("recording a tamper finding in the incident's evidence", "bundle", b, "err", err)
		}
	}
}

// incidentBundles are the sealed bundles directly under dir whose
// manifest names incident and holds evidence of the pod whose directory
// in a bundle is podDir. The incident on a quarantine policy is what its
// writer said: without the fence, whoever may create NetworkPolicies can
// forge one naming another incident, whose evidence must not take the
// forger's findings.
func incidentBundles(dir, incident, podDir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(filepath.Join(b, evidence.ManifestFile))
		if err != nil {
			continue
		}
		var m struct {
			Incident string          `json:"incident"`
			Files    []evidence.File `json:"files"`
		}
		if json.Unmarshal(raw, &m) == nil && m.Incident == incident &&
			slices.ContainsFunc(m.Files, func(f evidence.File) bool { return strings.HasPrefix(f.Path, podDir+"/") }) {
			out = append(out, b)
		}
	}
	return out
}

// fenceCheck is the guard's check of kir's admission fence (package
// fence): "" when every policy, binding and the parameters are installed
// as this kir generates them, else what is missing or changed.
func fenceCheck(kube kubernetes.Interface, ns string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if ns == "" {
			ns = action.DefaultKirNamespace
		}
		r, err := fence.Check(ctx, kube, ns)
		if err != nil || r.Intact() {
			return "", err
		}
		var out []string
		for _, st := range r {
			if st.State != fence.Installed {
				out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", st.Kind, st.Name, st.State, st.Detail)))
			}
		}
		return "kir's admission fence is not as installed: " + strings.Join(out, "; "), nil
	}
}
