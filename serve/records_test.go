package serve_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/playbooks"
	"kir.dev/kir/record"
)

// TestAcceptedAlertsOutliveTheirReplica: replica a answers 202 for 20
// alerts on 20 pods and is SIGKILLed at once; its state directory (spool,
// journals, evidence: an emptyDir) is deleted. Replica b takes over the
// records a wrote before each 202 once a's claims expire, and contains
// all 20 pods, each once; every record ends Succeeded.
func TestAcceptedAlertsOutliveTheirReplica(t *testing.T) {
	t.Parallel()
	const n = 20
	w := newWorld(t, n)
	stateA, stateB := t.TempDir(), t.TempDir()
	a := startServe(t, stateA, "replica-a", "--workers", "1")
	startServe(t, stateB, "replica-b")
	for i, pod := range w.pods {
		if code := a.post(t, alert(t, w.ns, pod.Name, fmt.Sprintf("uuid-outlive-%d", i))); code != 202 {
			t.Fatalf("POST %d to replica a: %d", i, code)
		}
	}
	a.kill()
	if err := os.RemoveAll(stateA); err != nil {
		t.Fatal(err)
	}

	for _, pod := range w.pods {
		waitIsolated(t, pod, 90*time.Second)
	}
	store := record.NewStore(cluster.Client, leaseNamespace(t))
	var recs []record.Response
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		recs, err = store.List(ctx, "")
		if err != nil || len(recs) != n {
			return false, err
		}
		for _, r := range recs {
			if r.Status.Phase != record.Succeeded {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for _, r := range recs {
			t.Logf("record %s: %s %s (%s)", r.Name, r.Status.Phase, r.Status.Message, r.Spec.Target)
		}
		t.Fatalf("want %d records, all Succeeded: %v", n, err)
	}
	takenOver := 0
	for _, r := range recs {
		if r.Status.Claim != nil && r.Status.Claim.Takeovers > 0 {
			takenOver++
		}
	}
	t.Logf("%d of %d records taken over by replica b", takenOver, n)
	if takenOver == 0 {
		t.Error("no record was taken over: replica a ran them all before it was killed; the test proves nothing")
	}
	for _, pod := range w.pods {
		if c := quarantineEvents(t, pod); c > 1 {
			t.Errorf("pod %s contained %d times, want once", pod.Name, c)
		}
	}
}

// TestBudgetHoldsAcrossReplicas: 50 alerts on 50 pods, posted to two
// replicas, with a budget of 20 pods: exactly 20 are contained and 30
// held, listed by kir runs list --held; each held one is contained once a
// person approves it (kir runs approve), and none twice.
func TestBudgetHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const n, limit = 50, 20
	w := newWorld(t, n)
	budgetFlags := []string{"--budget-pods", fmt.Sprint(limit)}
	a := startServe(t, t.TempDir(), "replica-a", budgetFlags...)
	b := startServe(t, t.TempDir(), "replica-b", budgetFlags...)
	for i, pod := range w.pods {
		p := a
		if i%2 == 1 {
			p = b
		}
		if code := p.post(t, alert(t, w.ns, pod.Name, fmt.Sprintf("uuid-budget-%d", i))); code != 202 {
			t.Fatalf("POST %d: %d", i, code)
		}
	}
	ns := leaseNamespace(t)
	store := record.NewStore(cluster.Client, ns)
	phases := func(ctx context.Context) (map[string][]record.Response, error) {
		recs, err := store.List(ctx, "")
		out := map[string][]record.Response{}
		for _, r := range recs {
			out[r.Status.Phase] = append(out[r.Status.Phase], r)
		}
		return out, err
	}
	var by map[string][]record.Response
	err := kubetest.Eventually(t.Context(), 90*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		by, err = phases(ctx)
		return err == nil && len(by[record.Succeeded]) == limit && len(by[record.Held]) == n-limit, nil
	})
	if err != nil {
		t.Fatalf("records by phase: %d succeeded, %d held, %d running, %d accepted, %d failed; want %d and %d: %v",
			len(by[record.Succeeded]), len(by[record.Held]), len(by[record.Running]), len(by[record.Accepted]), len(by[record.Failed]), limit, n-limit, err)
	}
	contained := 0
	for _, pod := range w.pods {
		contained += min(1, quarantineEvents(t, pod))
	}
	if contained != limit {
		t.Errorf("%d pods contained, want the budget's %d", contained, limit)
	}

	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	listed := kir.MustRun(t, "runs", "list", "--held", "--kir-namespace", ns)
	for _, r := range by[record.Held] {
		if !strings.Contains(listed.Stdout, r.Name) {
			t.Errorf("kir runs list --held does not list %s (%s)", r.Name, r.Spec.Target)
		}
		kir.MustRun(t, "runs", "approve", r.Name, "--kir-namespace", ns, "--reason", "checked")
	}
	for _, pod := range w.pods {
		waitIsolated(t, pod, 60*time.Second)
	}
	var listErr error
	err = kubetest.Eventually(t.Context(), 90*time.Second, func(ctx context.Context) (bool, error) {
		got, err := phases(ctx)
		if err != nil {
			listErr = err
			return false, nil
		}
		by = got
		return len(by[record.Succeeded]) == n, nil
	})
	if err != nil {
		t.Errorf("after the approvals, %d of %d records succeeded, %d held, %d accepted, %d running, %d failed (last list error: %v): %v",
			len(by[record.Succeeded]), n, len(by[record.Held]), len(by[record.Accepted]), len(by[record.Running]), len(by[record.Failed]), listErr, err)
	}
	for _, pod := range w.pods {
		if c := quarantineEvents(t, pod); c != 1 {
			t.Errorf("pod %s contained %d times, want once", pod.Name, c)
		}
	}
}

// approvalRouting routes the test's Critical alerts to contain-pod with
// --rotate-secrets: the ServiceAccount revocation needs a person.
const approvalRouting = `apiVersion: kir.dev/v1alpha1
kind: Routing
rules:
  - name: contain
    match:
      priority: ">=Critical"
    playbook: contain-pod
    params:
      namespace: ${k8s.ns.name}
      name: ${k8s.pod.name}
      rotateSecrets: true
      cordon: false
      images: false
`

// TestRevocationWaitsForAPerson: contain-pod --rotate-secrets from a
// route isolates and seals the evidence, then holds before revoking the
// ServiceAccount's tokens; the records say Held, and still do after kir
// serve is killed and restarted. kir runs approve --step revoke on one
// revokes its tokens, once; kir runs deny on the other ends it Denied
// with the pod isolated and its tokens valid.
func TestRevocationWaitsForAPerson(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 0)
	ctx := t.Context()
	tokens := map[string]string{}
	for _, name := range []string{"approved", "denied"} {
		if _, err := cluster.Client.CoreV1().ServiceAccounts(w.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		secs := int64(3600)
		tok, err := cluster.Client.CoreV1().ServiceAccounts(w.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok.Status.Token
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{NodeName: w.node, ServiceAccountName: name, Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}}}
		if _, err := cluster.Client.CoreV1().Pods(w.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	routing := filepath.Join(t.TempDir(), "routing.yaml")
	if err := os.WriteFile(routing, []byte(approvalRouting), 0o600); err != nil {
		t.Fatal(err)
	}
	state, keys := t.TempDir(), t.TempDir()
	kubetest.Kir{}.MustRun(t, "evidence", "keygen", "--out", keys)
	keyFlags := []string{"--config", routing, "--key", filepath.Join(keys, "kir.key")}
	p := startServe(t, state, "replica-a", keyFlags...)
	for _, name := range []string{"approved", "denied"} {
		if code := p.post(t, alert(t, w.ns, name, "uuid-revoke-"+name)); code != 202 {
			t.Fatalf("POST %s: %d", name, code)
		}
	}
	ns := leaseNamespace(t)
	store := record.NewStore(cluster.Client, ns)
	held := waitRecords(t, store, 2, record.Held)
	for _, r := range held {
		if r.Status.Run == "" {
			t.Errorf("held record %s names no run", r.Name)
			continue
		}
		if _, err := os.Stat(filepath.Join(state, "evidence", r.Status.Run, "manifest.json")); err != nil {
			t.Errorf("the held run %s sealed no evidence: %v", r.Status.Run, err)
		}
	}
	for name, tok := range tokens {
		if !authenticates(t, tok) {
			t.Errorf("the token of %s was revoked before anyone approved it", name)
		}
	}

	p.kill()
	startServe(t, state, "replica-a", keyFlags...)
	held = waitRecords(t, store, 2, record.Held)
	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	for _, r := range held {
		if strings.HasSuffix(r.Spec.Target, "/approved") {
			kir.MustRun(t, "runs", "approve", r.Name, "--step", "revoke", "--kir-namespace", ns, "--reason", "the token is burned")
		} else {
			kir.MustRun(t, "runs", "deny", r.Name, "--kir-namespace", ns, "--reason", "the token is needed by the investigation")
		}
	}
	err := kubetest.Eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		recs, err := store.List(ctx, "")
		done := 0
		for _, r := range recs {
			if (strings.HasSuffix(r.Spec.Target, "/approved") && r.Status.Phase == record.Succeeded) ||
				(strings.HasSuffix(r.Spec.Target, "/denied") && r.Status.Phase == record.Denied) {
				done++
			}
		}
		return err == nil && done == 2, nil
	})
	if err != nil {
		for _, r := range waitRecords(t, store, 2, "") {
			t.Logf("record %s (%s): %s %s", r.Name, r.Spec.Target, r.Status.Phase, r.Status.Message)
		}
		t.Fatalf("want the approved run Succeeded and the denied one Denied: %v", err)
	}
	// The approval is in the run's evidence: a signed custody entry naming
	// the approver, and the bundle still verifies.
	for _, r := range held {
		if !strings.HasSuffix(r.Spec.Target, "/approved") {
			continue
		}
		bundle := filepath.Join(state, "evidence", r.Status.Run)
		custody, err := os.ReadFile(filepath.Join(bundle, "custody.log"))
		if err != nil || !strings.Contains(string(custody), `"type":"approve"`) || !strings.Contains(string(custody), "kubetest-admin") {
			t.Errorf("the run's custody log does not record the approval by kubetest-admin (%v):\n%s", err, custody)
		}
		if v := kir.Run(t, "evidence", "verify", bundle, "--key", filepath.Join(keys, "kir.pub")); v.Code != 0 {
			t.Errorf("kir evidence verify of the approved run's bundle: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
		}
	}
	err = kubetest.Eventually(ctx, 30*time.Second, func(context.Context) (bool, error) { return !authenticates(t, tokens["approved"]), nil })
	if err != nil {
		t.Error("the approved revocation left the token valid")
	}
	if !authenticates(t, tokens["denied"]) {
		t.Error("the denied revocation revoked the token")
	}
	for _, name := range []string{"approved", "denied"} {
		pod, err := cluster.Client.CoreV1().Pods(w.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || pod.Labels["kir.dev/quarantine"] == "" {
			t.Errorf("pod %s is not isolated after the decision: %v", name, err)
		}
	}
}

// waitRecords waits until the store holds n records, all in phase (any
// phase when ""), and returns them.
func waitRecords(t *testing.T, store *record.Store, n int, phase string) []record.Response {
	t.Helper()
	var recs []record.Response
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		if recs, err = store.List(ctx, ""); err != nil || len(recs) != n {
			return false, nil
		}
		for _, r := range recs {
			if phase != "" && r.Status.Phase != phase {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for _, r := range recs {
			t.Logf("record %s (%s): %s %s", r.Name, r.Spec.Target, r.Status.Phase, r.Status.Message)
		}
		t.Fatalf("want %d records %s: %v", n, phase, err)
	}
	return recs
}

// authenticates reports whether the API server accepts token.
func authenticates(t *testing.T, token string) bool {
	t.Helper()
	tr, err := cluster.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Authenticated
}

// TestPauseHoldsEveryRun: kir runs pause holds every new run of kir serve
// (its record says paused); kir runs unpause lets new ones run, and the
// one held meanwhile runs once a person approves it.
func TestPauseHoldsEveryRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2)
	ns := leaseNamespace(t)
	kir := kubetest.Kir{Kubeconfig: cluster.Kubeconfig}
	kir.MustRun(t, "runs", "pause", "--kir-namespace", ns)
	state := t.TempDir()
	p := startServe(t, state, "replica-p")
	if code := p.post(t, alert(t, w.ns, w.pods[0].Name, "uuid-paused")); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	store := record.NewStore(cluster.Client, ns)
	held := waitRecords(t, store, 1, record.Held)
	if !strings.Contains(held[0].Status.Message, "paused") {
		t.Errorf("held record says %q, want that kir is paused", held[0].Status.Message)
	}
	if quarantineEvents(t, w.pods[0]) != 0 {
		t.Error("a run went on while kir was paused")
	}
	kir.MustRun(t, "runs", "unpause", "--kir-namespace", ns)
	if code := p.post(t, alert(t, w.ns, w.pods[1].Name, "uuid-unpaused")); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	waitIsolated(t, w.pods[1], 30*time.Second)
	kir.MustRun(t, "runs", "approve", held[0].Name, "--kir-namespace", ns, "--reason", "looked at it")
	waitIsolated(t, w.pods[0], 30*time.Second)
	// The run that ran because of the approval has it in its evidence.
	var rec *record.Response
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		rec, err = store.Get(ctx, held[0].Name)
		return err == nil && rec.Status.Phase == record.Succeeded, nil
	})
	if err != nil {
		t.Fatalf("the approved record did not end Succeeded: %v", err)
	}
	err = kubetest.Eventually(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		custody, err := os.ReadFile(filepath.Join(state, "evidence", rec.Status.Run, "custody.log"))
		return err == nil && strings.Contains(string(custody), `"type":"approve"`) && strings.Contains(string(custody), "looked at it"), nil
	})
	if err != nil {
		custody, _ := os.ReadFile(filepath.Join(state, "evidence", rec.Status.Run, "custody.log"))
		t.Errorf("the approved run's custody log does not record the approval:\n%s", custody)
	}
}

// TestHeldRunExpires: a held run nobody answers ends Expired after
// --hold-for, and its record says since when it waited.
func TestHeldRunExpires(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	ns := leaseNamespace(t)
	kubetest.Kir{Kubeconfig: cluster.Kubeconfig}.MustRun(t, "runs", "pause", "--kir-namespace", ns)
	p := startServe(t, t.TempDir(), "replica-x", "--hold-for", "2s")
	if code := p.post(t, alert(t, w.ns, w.pods[0].Name, "uuid-expires")); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	store := record.NewStore(cluster.Client, ns)
	held := waitRecords(t, store, 1, record.Held)
	if held[0].Status.HeldSince == nil || held[0].Status.ExpiresAt == nil || held[0].Status.ExpiresAt.Sub(held[0].Status.HeldSince.Time) != 2*time.Second {
		t.Errorf("held record: since %v, expires %v; want 2s apart", held[0].Status.HeldSince, held[0].Status.ExpiresAt)
	}
	expired := waitRecords(t, store, 1, record.Expired)
	if !strings.Contains(expired[0].Status.Message, "expired") || expired[0].Status.Finished == nil {
		t.Errorf("expired record: %q, finished %v", expired[0].Status.Message, expired[0].Status.Finished)
	}
	if quarantineEvents(t, w.pods[0]) != 0 {
		t.Error("an expired run acted")
	}
}

// TestNodeBudgetDefersOnlyTheCordon: over the node budget, a run's cordon
// is deferred while its pod is isolated and the rest of the run goes on;
// the record is held at the cordon until a person approves that step.
func TestNodeBudgetDefersOnlyTheCordon(t *testing.T) {
	t.Parallel()
	first, second := newWorld(t, 1), newWorld(t, 1)
	state := t.TempDir()
	p := startServe(t, state, "replica-n", "--budget-nodes", "1")
	ns := leaseNamespace(t)
	store := record.NewStore(cluster.Client, ns)
	if code := p.post(t, alert(t, first.ns, first.pods[0].Name, "uuid-node-1")); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	waitRecords(t, store, 1, record.Succeeded)
	if !unschedulable(t, first.node) {
		t.Fatalf("node %s was not cordoned within the budget", first.node)
	}
	if code := p.post(t, alert(t, second.ns, second.pods[0].Name, "uuid-node-2")); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	var held *record.Response
	err := kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		recs, err := store.List(ctx, "")
		for i := range recs {
			if recs[i].Spec.Target == second.ns+"/"+second.pods[0].Name && recs[i].Status.Phase == record.Held {
				held = &recs[i]
			}
		}
		return err == nil && held != nil, nil
	})
	if err != nil {
		t.Fatalf("the second run's record is not held: %v", err)
	}
	if !strings.Contains(held.Status.Message, "node budget") {
		t.Errorf("held record says %q, want the node budget", held.Status.Message)
	}
	waitIsolated(t, second.pods[0], 10*time.Second)
	if unschedulable(t, second.node) {
		t.Fatalf("node %s was cordoned over the node budget", second.node)
	}
	eng := newEngine(t, state)
	run, err := eng.Load(held.Status.Run)
	if err != nil {
		t.Fatal(err)
	}
	if s := run.Step("cordon"); s == nil || s.Status != playbooks.StepDeferred {
		t.Errorf("cordon step: %+v, want deferred", s)
	}
	if s := run.Step("seal"); s == nil || s.Status == playbooks.StepPending {
		t.Errorf("seal step after the deferred cordon: %+v, want it run (or its condition checked)", s)
	}

	kubetest.Kir{Kubeconfig: cluster.Kubeconfig}.MustRun(t, "runs", "approve", held.Name, "--step", "cordon", "--kir-namespace", ns)
	err = kubetest.Eventually(t.Context(), 60*time.Second, func(ctx context.Context) (bool, error) {
		rec, err := store.Get(ctx, held.Name)
		return err == nil && rec.Status.Phase == record.Succeeded, nil
	})
	if err != nil {
		t.Fatalf("the approved cordon's record did not end Succeeded: %v", err)
	}
	if !unschedulable(t, second.node) {
		t.Errorf("node %s was not cordoned once a person approved it", second.node)
	}
	if n := quarantineEvents(t, second.pods[0]); n != 1 {
		t.Errorf("the pod was isolated %d times, want once (the resumed run runs the cordon alone)", n)
	}
}

func unschedulable(t *testing.T, node string) bool {
	t.Helper()
	n, err := cluster.Client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable
}
