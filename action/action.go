package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Action is one thing kir can do to a cluster or a secret store.
type Action interface {
	// Spec describes the action: its name, parameters and required RBAC.
	Spec() Spec
	// Validate checks parameters without any I/O and returns every problem.
	Validate(p Params) error
	// Run performs the action. It must be idempotent: running it again
	// after success, or after an interruption, reaches the same state.
	Run(ctx context.Context, env Env, p Params) (Result, error)
	// Output returns an output of Run's as its Go type: out as Run
	// returned it, or as the plain JSON values a run's journal holds.
	Output(out any) (any, error)
}

// Spec is an action's self-description, used for validation, docs and RBAC.
type Spec struct {
	// Name identifies the action in playbooks, e.g. "contain.isolate-pod".
	Name string `json:"name"`
	// Summary is one sentence saying what the action does.
	Summary string `json:"summary"`
	// Params lists the parameters the action takes.
	Params []Param `json:"params"`
	// Rules are the RBAC rules the action needs, at cluster scope.
	Rules []rbacv1.PolicyRule `json:"rules"`
	// ReadOnly actions only observe: they change no cluster object and no
	// secret store (they may write kir's own files, such as an evidence
	// bundle, and ask a kubelet for a checkpoint), so running one again is
	// harmless and nothing of theirs is undone. The engine journals a
	// read-only step's start without waiting for the disk, and the objects
	// it reads are the run's Found.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// Params are an action's parameters as a playbook step or a command gives
// them: JSON-like values keyed by parameter name.
type Params map[string]any

// DryRun says whether writes are persisted, as kubectl's --dry-run does.
type DryRun string

// The dry-run modes.
const (
	DryRunNone   DryRun = "none"   // write for real
	DryRunClient DryRun = "client" // read, compute, send no write
	DryRunServer DryRun = "server" // send writes with dryRun=All: validated, not persisted
)

// ParseDryRun parses a --dry-run value; the empty string means none.
func ParseDryRun(s string) (DryRun, error) {
	switch DryRun(s) {
	case "", DryRunNone:
		return DryRunNone, nil
	case DryRunClient, DryRunServer:
		return DryRun(s), nil
	}
	return "", fmt.Errorf("invalid dry-run mode %q: want none, client or server", s)
}

// Writes reports whether writes are sent to the server at all.
func (d DryRun) Writes() bool { return d != DryRunClient }

// Persists reports whether writes take effect.
func (d DryRun) Persists() bool { return d == DryRunNone || d == "" }

// Opts returns the DryRun field of Kubernetes write options.
func (d DryRun) Opts() []string {
	if d == DryRunServer {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// Env is what an action runs with. It is passed by value; actions must not
// keep it beyond Run.
type Env struct {
	// Kube is the Kubernetes client.
	Kube kubernetes.Interface
	// DryRun is the dry-run mode for every write.
	DryRun DryRun
	// Incident identifies the incident the run belongs to.
	Incident string
	// Actor is the identity kir acts as, as the API server reports it.
	Actor string
	// Cluster is the API server's URL, recorded with evidence.
	Cluster string
	// ClusterCA is the PEM bundle that verifies the API server, for the
	// kubeconfigs kir issues; empty when the system roots do.
	ClusterCA []byte
	// Version is kir's version, recorded with evidence.
	Version string
	// Progress, when set, receives progress bars (a terminal's stderr).
	Progress io.Writer
	// Log receives progress; never nil once Defaults has run.
	Log *slog.Logger
	// Now is the clock; never nil once Defaults has run.
	Now func() time.Time
	// Note, when set, records data durably in the run's journal before the
	// action goes on: what the action must know if it is killed and run
	// again, such as a version it read or the hash of a value it is about
	// to write. Never a secret value. Nil when the run is not journaled.
	Note func(data any) error
	// Notes are the data earlier attempts of this step noted, oldest
	// first: a resumed action reads them to learn what it had done.
	Notes []json.RawMessage
	// Found holds objects as the run found them: read by its read-only
	// steps before any step that acts ran in this process (a resumed run
	// starts with none). The first step that acts may start from them
	// instead of reading them again; the engine gives later steps none.
	// Nil outside a run.
	Found *Found
	// KirNamespace is kir's own namespace, where its node agents report
	// (package agent); Defaults sets DefaultKirNamespace.
	KirNamespace string
}

// Defaults fills unset optional fields.
func (e Env) Defaults() Env {
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.DryRun == "" {
		e.DryRun = DryRunNone
	}
	if e.KirNamespace == "" {
		e.KirNamespace = DefaultKirNamespace
	}
	return e
}

// ErrNotEnforced marks an isolation the node did not enforce in time: the
// pod still reached what its quarantine policy denies. Such a run reads
// "not enforced", never contained.
var ErrNotEnforced = errors.New("isolation not enforced")

// Result is what an action reports back.
type Result struct {
	// Changed is true when the action changed something (or, in a dry run,
	// would have).
	Changed bool `json:"changed"`
	// Output is the action's structured result, JSON-serialisable.
	Output any `json:"output,omitempty"`
	// Warnings are things the responder must know, such as what still
	// weakens an isolation.
	Warnings []string `json:"warnings,omitempty"`
	// Writes lists every write sent (or, in a client dry run, that would
	// have been sent), in order.
	Writes []Write `json:"writes,omitempty"`
}

// Write records one write to the cluster: what was sent and to what.
type Write struct {
	// Verb is apply, patch, update, create, delete or evict.
	Verb string `json:"verb"`
	// Kind, Namespace and Name identify the object.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Body is the object or patch sent; in a server dry run, the object
	// the server returned.
	Body any `json:"body,omitempty"`
	// Done is false when the write was not sent or failed.
	Done bool `json:"done"`
	// Error says why a write failed.
	Error string `json:"error,omitempty"`
}
