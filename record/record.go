// Package record keeps kir's response records in the API server: one
// Response (responses.kir.dev, deploy/components/records) per accepted
// alert match. kir serve writes a match's record as part of accepting its
// alert — before it answers 202 — so that the alert outlives the replica
// that accepted it: the cluster's etcd, the store the cluster already
// trusts and replicates, holds it. The replica that runs it keeps a claim
// on it (a holder and a renew time in its status); another replica takes
// over a record that is not finished and whose claim expired. The status
// says how the run went, for kubectl get and kir runs.
//
// Why a CRD rather than a ConfigMap per alert or a Lease: it is typed and
// validated by the API server (a schema, bounded fields), listed by kind
// (kubectl get responses), shown as a table (printer columns), guarded by
// its own RBAC (no ConfigMap reader sees alerts), and its status is a
// subresource that people who may approve need not be able to write. Its
// cost: the CRD must be installed (kir doctor says when it is not), and
// every accepted alert that starts a run is one write to etcd.
package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kir.dev/kir/action"
)

// The records' API.
var (
	GroupVersion = schema.GroupVersion{Group: "kir.dev", Version: "v1alpha1"}
	Resource     = GroupVersion.WithResource("responses")
)

// Kind is the records' kind.
const Kind = "Response"

// The phases of a record.
const (
	// Accepted: recorded; no replica has started its run yet.
	Accepted = "Accepted"
	// Running: a replica runs it (Status.Claim names which).
	Running = "Running"
	// Held: its run waits for a person (an approval, a budget).
	Held = "Held"
	// The run's ends.
	Succeeded = "Succeeded"
	Failed    = "Failed"
	Denied    = "Denied"
	Expired   = "Expired"
	// Duplicate: another run of its key covered it.
	Duplicate = "Duplicate"
)

// Finished reports whether a phase is final.
func Finished(phase string) bool {
	switch phase {
	case Succeeded, Failed, Denied, Expired, Duplicate:
		return true
	}
	return false
}

// MaxAlertBytes bounds the alert a record holds whole; a larger one is
// recorded by its SHA-256 (the accepting replica's spool and the run's
// evidence hold it).
const MaxAlertBytes = 64 << 10

// Response is one record.
type Response struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec"`
	Status            Status `json:"status,omitempty"`
}

// Spec is what was accepted: written once, by the accepting replica.
type Spec struct {
	// Alert is the alert as received, when at most MaxAlertBytes.
	Alert         json.RawMessage `json:"alert,omitempty"`
	AlertSHA256   string          `json:"alertSHA256"`
	AlertRule     string          `json:"alertRule,omitempty"`
	AlertPriority string          `json:"alertPriority,omitempty"`
	Received      metav1.Time     `json:"received"`
	AcceptedBy    string          `json:"acceptedBy"`
	// Index is the match's index among the alert's routing matches.
	Index       int    `json:"index"`
	RoutingRule string `json:"routingRule,omitempty"`
	Playbook    string `json:"playbook"`
	Key         string `json:"key,omitempty"`
	// Target is namespace/name of the pod (or the node) the match acts on.
	Target string `json:"target,omitempty"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Match is the routing match as the accepting replica made it: what
	// another replica runs when it takes the record over.
	Match json.RawMessage `json:"match,omitempty"`
	// Approvals are what people decided on the held run, in order;
	// appended only (admission policy kir-response-approvals).
	Approvals []Approval `json:"approvals,omitempty"`
}

// The decisions of an Approval.
const (
	Approve = "approve"
	Deny    = "deny"
)

// Approval is one person's decision on a held run: on one step that needs
// approval, or (Step empty) on the whole run held by a budget.
type Approval struct {
	Step     string      `json:"step,omitempty"`
	Decision string      `json:"decision"`
	By       string      `json:"by"`
	At       metav1.Time `json:"at"`
	Reason   string      `json:"reason,omitempty"`
}

// Decision is the latest decision on step ("" for the run), if any.
func (r *Response) Decision(step string) (Approval, bool) {
	for i := len(r.Spec.Approvals) - 1; i >= 0; i-- {
		if a := r.Spec.Approvals[i]; a.Step == step {
			return a, true
		}
	}
	return Approval{}, false
}

// Status is how the record's run goes, written by the replica that holds
// its claim.
type Status struct {
	Phase    string       `json:"phase,omitempty"`
	Message  string       `json:"message,omitempty"`
	Run      string       `json:"run,omitempty"`
	Incident string       `json:"incident,omitempty"`
	Claim    *Claim       `json:"claim,omitempty"`
	Steps    []Step       `json:"steps,omitempty"`
	Evidence string       `json:"evidence,omitempty"`
	Finished *metav1.Time `json:"finished,omitempty"`
	// Decided counts the approvals a replica has acted on.
	Decided int `json:"decided,omitempty"`
	// HeldSince is when the record was held; it expires unanswered
	// ExpiresAt.
	HeldSince *metav1.Time `json:"heldSince,omitempty"`
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// Claim says which replica runs the record, until when.
type Claim struct {
	Holder          string      `json:"holder"`
	RenewTime       metav1.Time `json:"renewTime"`
	DurationSeconds int32       `json:"durationSeconds"`
	// Takeovers counts the replicas that took it over.
	Takeovers int `json:"takeovers,omitempty"`
}

// Expired reports whether the claim lapsed at now.
func (c *Claim) Expired(now time.Time) bool {
	return c == nil || now.After(c.RenewTime.Add(time.Duration(c.DurationSeconds)*time.Second))
}

// Step is one step's outcome.
type Step struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// Name is the record's name for match index of the alert whose body
// hashes to sum: the same alert posted to two replicas has one record.
func Name(sum string, index int) string {
	if len(sum) > 40 {
		sum = sum[:40]
	}
	return fmt.Sprintf("kir-%s-%d", sum, index)
}

// Sum is the hex SHA-256 of an alert's body.
func Sum(body []byte) string {
	s := sha256.Sum256(body)
	return hex.EncodeToString(s[:])
}

// Store reads and writes the records of one namespace (kir's).
type Store struct {
	rc rest.Interface
	ns string
}

// NewStore returns the records of namespace ns, through kube's REST client.
func NewStore(kube kubernetes.Interface, ns string) *Store {
	if ns == "" {
		ns = action.DefaultKirNamespace
	}
	return &Store{rc: kube.Discovery().RESTClient(), ns: ns}
}

// Namespace is where the records are.
func (s *Store) Namespace() string { return s.ns }

func (s *Store) path(name string, sub ...string) string {
	p := "/apis/" + GroupVersion.String() + "/namespaces/" + s.ns + "/" + Resource.Resource
	if name != "" {
		p += "/" + name
	}
	for _, x := range sub {
		p += "/" + x
	}
	return p
}

// Create writes a new record, labelled as kir's. A record of that name
// that exists already (the same alert accepted twice) is no error: created
// is then false.
func (s *Store) Create(ctx context.Context, r *Response) (created bool, err error) {
	r.APIVersion, r.Kind, r.Namespace = GroupVersion.String(), Kind, s.ns
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	r.Labels[action.LabelManagedBy] = action.ManagedByKir
	body, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	err = statusErr(s.rc.Post().AbsPath(s.path("")).SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Raw())
	switch {
	case apierrors.IsAlreadyExists(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("recording the response %s: %w", r.Name, err)
	}
	return true, nil
}

// Get reads one record.
func (s *Store) Get(ctx context.Context, name string) (*Response, error) {
	raw, err := s.rc.Get().AbsPath(s.path(name)).Do(ctx).Raw()
	if err != nil {
		return nil, statusErr(raw, err)
	}
	r := &Response{}
	if err := json.Unmarshal(raw, r); err != nil {
		return nil, fmt.Errorf("decoding the response %s: %w", name, err)
	}
	return r, nil
}

// List reads the records that labelSelector selects (empty: all).
func (s *Store) List(ctx context.Context, labelSelector string) ([]Response, error) {
	req := s.rc.Get().AbsPath(s.path(""))
	if labelSelector != "" {
		req = req.Param("labelSelector", labelSelector)
	}
	raw, err := req.Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("listing the responses in %s: %w", s.ns, statusErr(raw, err))
	}
	var list struct {
		Items []Response `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("decoding the responses: %w", err)
	}
	return list.Items, nil
}

// Decide appends a decision to the record. The API server's admission
// policy refuses one whose By is not the user writing it.
func (s *Store) Decide(ctx context.Context, name string, a Approval) (*Response, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		r.Spec.Approvals = append(r.Spec.Approvals, a)
		body, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		raw, err := s.rc.Put().AbsPath(s.path(name)).SetHeader("Content-Type", "application/json").Body(bytes.NewReader(body)).Do(ctx).Raw()
		err = statusErr(raw, err)
		if apierrors.IsConflict(err) && attempt < 16 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("recording the %s on %s: %w", a.Decision, name, err)
		}
		out := &Response{}
		return out, json.Unmarshal(raw, out)
	}
}

// statusErr is err with the API server's own Status, when body holds one:
// the REST client this package uses does not decode it.
func statusErr(body []byte, err error) error {
	if err == nil {
		return nil
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Message != "" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	return err
}

// ErrChanged is returned by UpdateStatus's change to give up without
// writing: what it read no longer allows the change.
var ErrChanged = errors.New("the record changed")

// UpdateStatus reads the record, lets change edit its status, and writes
// it back if the record did not change in between (resourceVersion);
// on a conflict it reads again and retries. change returning an error
// stops it without writing.
func (s *Store) UpdateStatus(ctx context.Context, name string, change func(*Response) error) (*Response, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := change(r); err != nil {
			return r, err
		}
		body, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		raw, err := s.rc.Put().AbsPath(s.path(name, "status")).SetHeader("Content-Type", "application/json").Body(bytes.NewReader(body)).Do(ctx).Raw()
		err = statusErr(raw, err)
		if apierrors.IsConflict(err) && attempt < 16 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("updating the response %s: %w", name, err)
		}
		out := &Response{}
		return out, json.Unmarshal(raw, out)
	}
}
