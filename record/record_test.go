package record_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/record"
)

func newStore(t *testing.T) *record.Store {
	t.Helper()
	ns, err := cluster.Namespace(t.Context(), "record")
	if err != nil {
		t.Fatal(err)
	}
	return record.NewStore(cluster.Client, ns)
}

func sample(name string) *record.Response {
	alert := json.RawMessage(`{"rule":"Drop and execute new binary in container","priority":"Critical"}`)
	r := &record.Response{Spec: record.Spec{
		Alert: alert, AlertSHA256: record.Sum(alert), AlertRule: "Drop and execute new binary in container",
		Received: metav1.NewTime(time.Now()), AcceptedBy: "replica-a", Playbook: "contain-pod", Target: "ns/web",
	}}
	r.Name = name
	return r
}

// TestCreateIsIdempotent: the same alert accepted twice (two replicas)
// has one record; the API server validates and stores it whole.
func TestCreateIsIdempotent(t *testing.T) {
	s := newStore(t)
	r := sample(record.Name(record.Sum([]byte("alert body")), 0))
	if created, err := s.Create(t.Context(), r); err != nil || !created {
		t.Fatalf("first create: %v, %v", created, err)
	}
	if created, err := s.Create(t.Context(), sample(r.Name)); err != nil || created {
		t.Fatalf("second create: created %v, %v; want false, nil", created, err)
	}
	got, err := s.Get(t.Context(), r.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Playbook != "contain-pod" || got.Spec.AlertRule == "" || string(got.Spec.Alert) == "" || got.Labels["app.kubernetes.io/managed-by"] != "kir" {
		t.Errorf("stored record %+v", got)
	}
}

// TestClaimTakeoverIsExclusive: of two replicas racing to take over an
// expired claim, exactly one wins (resourceVersion compare-and-swap);
// a live claim is not taken.
func TestClaimTakeoverIsExclusive(t *testing.T) {
	s := newStore(t)
	name := "kir-takeover-0"
	if _, err := s.Create(t.Context(), sample(name)); err != nil {
		t.Fatal(err)
	}
	take := func(who string, now time.Time) error {
		_, err := s.UpdateStatus(t.Context(), name, func(r *record.Response) error {
			if !r.Status.Claim.Expired(now) {
				return record.ErrChanged
			}
			r.Status.Phase = record.Running
			r.Status.Claim = &record.Claim{Holder: who, RenewTime: metav1.NewTime(now), DurationSeconds: 30}
			return nil
		})
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = take("replica-"+string(rune('a'+i)), time.Now()) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, record.ErrChanged):
			t.Errorf("take: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d replicas took the claim, want exactly 1", won)
	}
	if err := take("late", time.Now()); !errors.Is(err, record.ErrChanged) {
		t.Errorf("a live claim was taken: %v", err)
	}
	if err := take("later", time.Now().Add(time.Minute)); err != nil {
		t.Errorf("an expired claim was not taken: %v", err)
	}
}

// TestSchemaRefusesBadPhase: the API server validates what kir writes.
func TestSchemaRefusesBadPhase(t *testing.T) {
	s := newStore(t)
	if _, err := s.Create(t.Context(), sample("kir-bad-0")); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateStatus(t.Context(), "kir-bad-0", func(r *record.Response) error {
		r.Status.Phase = "Whatever"
		return nil
	})
	if err == nil {
		t.Fatal("a phase outside the schema's enum was stored")
	}
}

// TestApprovalNamesItsWriter: with the shipped admission policy, a user
// who may update records can add an approval in their own name, not in
// another's, and cannot remove one.
func TestApprovalNamesItsWriter(t *testing.T) {
	s := newStore(t)
	ns := s.Namespace()
	name := "kir-held-0"
	if _, err := s.Create(t.Context(), sample(name)); err != nil {
		t.Fatal(err)
	}
	alice := approver(t, ns, "alice")
	self := "system:serviceaccount:" + ns + ":alice"
	forged := record.Approval{Decision: record.Approve, By: "system:serviceaccount:" + ns + ":bob", At: metav1.Now()}
	_, err := alice.Decide(t.Context(), name, forged)
	if err == nil || !strings.Contains(err.Error(), "kir-response-approvals") {
		t.Fatalf("alice approving in bob's name: %v; want refused by kir-response-approvals", err)
	}
	own := record.Approval{Decision: record.Approve, By: self, At: metav1.Now(), Reason: "looked at it"}
	got, err := alice.Decide(t.Context(), name, own)
	if err != nil {
		t.Fatalf("alice approving in her own name: %v", err)
	}
	if d, ok := got.Decision(""); !ok || d.By != self || d.Decision != record.Approve {
		t.Errorf("decision %+v, %v", d, ok)
	}
	// Removing it, by anyone, is refused.
	cur, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Approvals = nil
	body, _ := json.Marshal(cur)
	err = cluster.Client.Discovery().RESTClient().Put().AbsPath("/apis/kir.dev/v1alpha1/namespaces/"+ns+"/responses/"+name).
		SetHeader("Content-Type", "application/json").Body(body).Do(t.Context()).Error()
	if err == nil {
		t.Error("an approval was removed")
	}
}

// approver is a Store acting as ServiceAccount name of ns, allowed to
// read and update the records there.
func approver(t *testing.T, ns, name string) *record.Store {
	t.Helper()
	ctx := t.Context()
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "approver"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{"kir.dev"}, Resources: []string{"responses"}, Verbs: []string{"get", "list", "update"}}}}
	if _, err := cluster.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "approver-" + name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "approver"}}
	if _, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.ServiceAccountConfig(ctx, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return record.NewStore(kc, ns)
}

// TestTable: kubectl get shows the records as a table with their phase,
// playbook, target, run and replica (the CRD's printer columns), as the
// API server renders it for kubectl.
func TestTable(t *testing.T) {
	s := newStore(t)
	if _, err := s.Create(t.Context(), sample("kir-table-0")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStatus(t.Context(), "kir-table-0", func(r *record.Response) error {
		r.Status.Phase, r.Status.Run = record.Succeeded, "alert-7-0.replica-a"
		r.Status.Claim = &record.Claim{Holder: "replica-a", RenewTime: metav1.Now(), DurationSeconds: 15}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := cluster.Client.Discovery().RESTClient().Get().AbsPath("/apis/kir.dev/v1alpha1/namespaces/"+s.Namespace()+"/responses").
		SetHeader("Accept", "application/json;as=Table;g=meta.k8s.io;v=v1").Do(t.Context()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, c.Name)
		}
	}
	if got := strings.Join(cols, " "); got != "Name Phase Playbook Target Run Replica Age" {
		t.Errorf("kubectl get columns: %s", got)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("kubectl get: %d rows, want 1", len(table.Rows))
	}
	row := map[string]string{}
	for i, c := range table.ColumnDefinitions {
		row[c.Name] = fmt.Sprint(table.Rows[0].Cells[i])
	}
	want := map[string]string{"Phase": "Succeeded", "Playbook": "contain-pod", "Target": "ns/web", "Run": "alert-7-0.replica-a", "Replica": "replica-a", "Rule": "Drop and execute new binary in container"}
	for col, v := range want {
		if row[col] != v {
			t.Errorf("kubectl get column %s = %q, want %q", col, row[col], v)
		}
	}
}
