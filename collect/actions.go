package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kir.dev/kir/action"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/journal"
)

// Actions returns this package's playbook actions. A playbook's evidence
// goes to one bundle (the bundle parameter, a directory) across its
// steps: collect.snapshot-pod records the pods before anything changes,
// collect.pod collects the rest once they are contained, and collect.seal
// closes and signs the bundle. Each reopens the bundle and finds there what
// an earlier, interrupted attempt already wrote, so rerunning a step
// completes it.
func Actions() []action.Action {
	return []action.Action{
		action.Func[SnapshotParams, SnapshotOutput]{
			Name:     "collect.snapshot-pod",
			ReadOnly: true,
			Summary:  "Record pods exactly as they are now (pods/NS/NAME/pod.json in the evidence bundle, which it creates), before a later step changes them.",
			Rules:    []rbacv1.PolicyRule{rule("", []string{"pods"}, "get", "list")},
			Do:       snapshot,
		},
		action.Func[PodParams, PodOutput]{
			Name:     "collect.pod",
			ReadOnly: true,
			Summary:  "Collect pods' logs (every container, current and previous), events, surrounding manifests and images by digest into the evidence bundle.",
			Rules:    Rules(),
			Do:       collectPods,
		},
		action.Func[NodeParams, NodeOutput]{
			Name:    "collect.node-capture",
			Summary: "Fetch each pod's capture from its node agent (processes, sockets, executables deleted from disk, writable layers) through the API server's pods/proxy into the evidence bundle, each file hashed on receipt and checked against the agent's digest.",
			Rules:   NodeRules(),
			Do:      collectNode,
		},
		action.Func[SealParams, SealOutput]{
			Name:     "collect.seal",
			ReadOnly: true,
			Summary:  "Add the run's journal to the evidence bundle, then seal it: manifest, in-toto statement, report and, with a key, a DSSE signature; optionally pack it as a .tar.gz.",
			Do:       seal,
		},
		action.Func[CustodyParams, CustodyOutput]{
			Name:     "collect.custody",
			ReadOnly: true,
			Summary:  "Append a signed entry to a sealed evidence bundle's custody log, recording what was done after sealing (a release, say), without touching the sealed files.",
			Do:       appendCustody,
		},
	}
}

// SnapshotParams are collect.snapshot-pod's parameters.
type SnapshotParams struct {
	Bundle    string           `json:"bundle" kir:"required" doc:"Evidence bundle directory; created if absent."`
	Namespace action.Namespace `json:"namespace" kir:"required" doc:"Namespace of the pods."`
	Name      action.PodName   `json:"name" doc:"Name of the pod. Give this or selector."`
	Selector  action.Selector  `json:"selector" doc:"Label selector: every pod it matches is recorded."`
	// contain-pod sets it: its isolate step reports a missing pod, once.
	IgnoreMissing bool `json:"ignoreMissing" doc:"A pod that does not exist (or a selector that matches none) is no error: the output lists no pod and no bundle is created."`
}

// Validate checks that exactly one of name and selector is given.
func (p SnapshotParams) Validate() error {
	if (p.Name == "") == (p.Selector == "") {
		return errors.New("give exactly one of name and selector")
	}
	if p.Selector != "" {
		if _, err := labels.Parse(string(p.Selector)); err != nil {
			return fmt.Errorf("selector: %w", err)
		}
	}
	return errors.Join(action.CheckParam("namespace", p.Namespace), action.CheckParam("name", p.Name), action.CheckParam("selector", p.Selector))
}

// SnapshotOutput is collect.snapshot-pod's output.
type SnapshotOutput struct {
	Bundle string `json:"bundle"`
	// Pods are namespace/name of each pod recorded, for collect.pod.
	Pods []string `json:"pods"`
	// Files are the files written now; a rerun writes none for a pod
	// already recorded.
	Files []string `json:"files"`
}

// PodDir is the folder of a pod's evidence in a playbook's bundle.
func PodDir(namespace, name string) string { return path.Join("pods", namespace, name) }

func snapshot(ctx context.Context, env action.Env, p SnapshotParams) (action.Result, error) {
	names := []string{string(p.Name)}
	if p.Selector != "" {
		list, err := env.Kube.CoreV1().Pods(string(p.Namespace)).List(ctx, metav1.ListOptions{LabelSelector: string(p.Selector)})
		if err != nil {
			return action.Result{}, fmt.Errorf("listing pods %s in %s: %w", p.Selector, p.Namespace, err)
		}
		names = names[:0]
		for _, pod := range list.Items {
			names = append(names, pod.Name)
		}
	}
	out := SnapshotOutput{Bundle: p.Bundle, Pods: []string{}, Files: []string{}}
	if !env.DryRun.Persists() {
		for _, n := range names {
			out.Pods = append(out.Pods, string(p.Namespace)+"/"+n)
		}
		return action.Result{Output: out}, nil
	}
	// The bundle is created with the first pod recorded: a pod that does
	// not exist leaves no empty bundle behind.
	b := &lazyBundle{dir: p.Bundle, env: env}
	defer b.Close()
	var errs []error
	for _, n := range names {
		dir := PodDir(string(p.Namespace), n)
		if _, ok := b.has(path.Join(dir, "pod.json")); ok {
			out.Pods = append(out.Pods, string(p.Namespace)+"/"+n)
			continue // recorded before anything changed: keep that one
		}
		pod, f, err := PodManifest(ctx, env.Kube, string(p.Namespace), n, Options{Sink: b, Dir: dir, Cluster: env.Cluster, Log: env.Log, Now: env.Now})
		switch {
		case apierrors.IsNotFound(err) && p.IgnoreMissing:
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		env.Found.AddPod(pod) // the step that isolates it starts from this read
		out.Pods = append(out.Pods, string(p.Namespace)+"/"+n)
		out.Files = append(out.Files, f.Path)
	}
	if len(names) == 0 && !p.IgnoreMissing {
		errs = append(errs, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "matching "+string(p.Selector)))
	}
	return action.Result{Changed: len(out.Files) > 0, Output: out}, errors.Join(errs...)
}

// lazyBundle opens (or creates) the bundle when first written to.
type lazyBundle struct {
	dir string
	env action.Env
	b   *evidence.Bundle
	err error
}

func (l *lazyBundle) open() (*evidence.Bundle, error) {
	if l.b == nil && l.err == nil {
		l.b, l.err = openBundle(l.dir, l.env)
	}
	return l.b, l.err
}

// has reports whether an existing bundle holds name; it creates none.
func (l *lazyBundle) has(name string) (evidence.File, bool) {
	if _, err := os.Lstat(filepath.Join(l.dir, evidence.CustodyFile)); err != nil {
		return evidence.File{}, false
	}
	b, err := l.open()
	if err != nil {
		return evidence.File{}, false
	}
	return b.Has(name)
}

func (l *lazyBundle) Put(name string, r io.Reader, src evidence.Source) (evidence.File, error) {
	b, err := l.open()
	if err != nil {
		return evidence.File{}, err
	}
	return b.Put(name, r, src)
}

func (l *lazyBundle) Custody(e evidence.Entry) error {
	b, err := l.open()
	if err != nil {
		return err
	}
	return b.Custody(e)
}

func (l *lazyBundle) Close() error {
	if l.b == nil {
		return nil
	}
	return l.b.Close()
}

// PodParams are collect.pod's parameters.
type PodParams struct {
	Bundle        string   `json:"bundle" kir:"required" doc:"Evidence bundle directory; created if absent."`
	Pods          []string `json:"pods" kir:"required" doc:"namespace/name of each pod, as collect.snapshot-pod outputs them."`
	Images        bool     `json:"images" doc:"Pull every container's image by digest into the bundle as an OCI layout."`
	PullSecrets   bool     `json:"pullSecrets" doc:"Authenticate to registries with the pod's imagePullSecrets (needs the kir-collect-pull-secrets role)."`
	Checkpoint    bool     `json:"checkpoint" doc:"Checkpoint running containers through the kubelet (needs the kir-collect-checkpoint role); the archive stays on the node."`
	LogLimitBytes int      `json:"logLimitBytes" doc:"Bound on what is kept of each container log, in bytes (default 10 MiB): a longer log keeps its first and last halves around a marked gap, with the whole log's length and SHA-256 recorded."`
}

// Validate checks the pod names.
func (p PodParams) Validate() error {
	var errs []error
	for _, s := range p.Pods {
		if ns, n, ok := strings.Cut(s, "/"); !ok || ns == "" || n == "" || strings.Contains(n, "/") {
			errs = append(errs, fmt.Errorf("pods: %q is not namespace/name", s))
		}
	}
	if p.LogLimitBytes < 0 {
		errs = append(errs, errors.New("logLimitBytes: negative"))
	}
	return errors.Join(errs...)
}

// PodOutput is collect.pod's output.
type PodOutput struct {
	Bundle string   `json:"bundle"`
	Files  int      `json:"files"`
	Bytes  int64    `json:"bytes"`
	Notes  []string `json:"notes"`
	Images []Image  `json:"images"`
}

func collectPods(ctx context.Context, env action.Env, p PodParams) (action.Result, error) {
	out := PodOutput{Bundle: p.Bundle, Notes: []string{}, Images: []Image{}}
	if !env.DryRun.Persists() {
		return action.Result{Output: out}, nil
	}
	b, sealed, err := openUnsealed(p.Bundle, env)
	if sealed != "" {
		return action.Result{Output: out, Warnings: []string{sealed}}, nil
	}
	if err != nil {
		return action.Result{}, err
	}
	defer b.Close()
	var errs []error
	for _, s := range p.Pods {
		ns, name, _ := strings.Cut(s, "/")
		dir := PodDir(ns, name)
		_, recorded := b.Has(path.Join(dir, "pod.json"))
		res, err := Pod(ctx, env.Kube, ns, name, Options{
			Sink: resumed{b}, Dir: dir, Cluster: env.Cluster, SkipPodManifest: recorded,
			LogLimitBytes: int64(p.LogLimitBytes), Images: p.Images, PullSecrets: p.PullSecrets, Checkpoint: p.Checkpoint,
			Progress: env.Progress, Log: env.Log, Now: env.Now,
		})
		for _, f := range res.Files {
			out.Files++
			out.Bytes += f.Size
		}
		out.Notes = append(out.Notes, res.Notes...)
		out.Images = append(out.Images, res.Images...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
		}
	}
	return action.Result{Changed: out.Files > 0, Output: out}, errors.Join(errs...)
}

// resumed is a bundle that a rerun of a step writes to again: a file an
// earlier attempt wrote is kept, not an error.
type resumed struct{ *evidence.Bundle }

func (r resumed) Put(name string, body io.Reader, src evidence.Source) (evidence.File, error) {
	if f, ok := r.Has(name); ok {
		return f, nil
	}
	return r.Bundle.Put(name, body, src)
}

// SealParams are collect.seal's parameters.
type SealParams struct {
	Bundle  string `json:"bundle" kir:"required" doc:"Evidence bundle directory."`
	Key     string `json:"key" doc:"Private key file (kir evidence keygen) to sign with; empty leaves the bundle unsigned."`
	Journal string `json:"journal" doc:"The run's journal (run.journal), copied into the bundle as run/journal.jsonl with one custody entry per finished step; a run started by an alert also gets the alert, as the journal recorded it, as run/alert.json."`
	Archive string `json:"archive" doc:"Also pack the sealed bundle into this .tar.gz file."`
}

// Validate checks the archive's name.
func (p SealParams) Validate() error {
	if p.Archive != "" && !strings.HasSuffix(p.Archive, ".tar.gz") {
		return fmt.Errorf("archive: %q does not end in .tar.gz", p.Archive)
	}
	return nil
}

// SealOutput is collect.seal's output.
type SealOutput struct {
	Bundle  string `json:"bundle"`
	Archive string `json:"archive,omitempty"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
	Signed  bool   `json:"signed"`
	KeyID   string `json:"keyID,omitempty"`
	// PublicKey is the public key next to the private one (kir.pub beside
	// kir.key), when there is one: what verifiers need.
	PublicKey string `json:"publicKey,omitempty"`
}

func seal(ctx context.Context, env action.Env, p SealParams) (action.Result, error) {
	var signer evidence.Signer
	if p.Key != "" {
		var err error
		if signer, err = evidence.LoadSigner(p.Key); err != nil {
			return action.Result{}, err
		}
	}
	out := SealOutput{Bundle: p.Bundle, Archive: p.Archive, Signed: signer != nil}
	if signer != nil {
		out.KeyID = signer.KeyID()
		pub := strings.TrimSuffix(p.Key, filepath.Ext(p.Key)) + ".pub"
		if _, err := os.Stat(pub); err == nil {
			out.PublicKey = pub
		}
	}
	if !env.DryRun.Persists() {
		return action.Result{Output: out}, nil
	}
	changed := false
	b, err := openBundle(p.Bundle, env)
	switch {
	case errors.Is(err, evidence.ErrSealed):
		// Sealed by an attempt that stopped before it was journaled.
	case err != nil:
		return action.Result{}, err
	default:
		if err := addJournal(b, p.Journal, env); err != nil {
			b.Close()
			return action.Result{}, err
		}
		if err := b.Seal(signer); err != nil {
			return action.Result{}, err
		}
		changed = true
	}
	s, err := evidence.Show(p.Bundle)
	if err != nil {
		return action.Result{}, err
	}
	out.Files, out.Bytes = len(s.Files), s.Bytes
	if p.Archive != "" {
		// An archive there already is whole (Pack renames it into place)
		// if this is a rerun of a seal that packed it.
		if err := evidence.Pack(p.Bundle, p.Archive); err != nil && !(errors.Is(err, fs.ErrExist) && !changed) {
			return action.Result{}, err
		}
		changed = true
	}
	return action.Result{Changed: changed, Output: out}, nil
}

// openBundle opens the bundle in dir for the run's incident, creating it
// when it does not exist yet.
func openBundle(dir string, env action.Env) (*evidence.Bundle, error) {
	opts := evidence.Options{Incident: env.Incident, Actor: env.Actor, Version: env.Version, Now: env.Now}
	if _, err := os.Lstat(filepath.Join(dir, evidence.CustodyFile)); errors.Is(err, fs.ErrNotExist) {
		return evidence.Create(dir, opts)
	}
	return evidence.Open(dir, opts)
}

// openUnsealed opens the bundle a collecting step writes to. A bundle
// that an earlier attempt of this run collected and sealed (a resumed run
// runs again the steps after the one that failed) is no error: what it
// holds stands, a seal takes no more, and sealed says so.
func openUnsealed(dir string, env action.Env) (b *evidence.Bundle, sealed string, err error) {
	b, err = openBundle(dir, env)
	if errors.Is(err, evidence.ErrSealed) {
		if s, serr := evidence.Show(dir); serr == nil && s.Incident != "" && s.Incident == env.Incident {
			return nil, fmt.Sprintf("bundle %s was sealed by an earlier attempt of this run: nothing more collected into it", dir), nil
		}
	}
	return b, "", err
}

// JournalFile is where collect.seal puts the run's journal in the bundle.
const JournalFile = "run/journal.jsonl"

// addJournal copies the run's journal, as it stands when sealing starts,
// into the bundle, and records the run and each finished step in custody.
// The journal keeps its own hash chain, so the copy can be checked against
// the original line by line.
func addJournal(b *evidence.Bundle, file string, env action.Env) error {
	if file == "" {
		return nil
	}
	if _, ok := b.Has(JournalFile); ok {
		return nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the run's journal: %w", err)
	}
	recs, err := journal.ReadFrom(bytes.NewReader(raw), file)
	if err != nil {
		return fmt.Errorf("reading the run's journal: %w", err)
	}
	for _, r := range recs.Records {
		var d map[string]any
		if len(r.Data) > 0 {
			if err := json.Unmarshal(r.Data, &d); err != nil {
				return fmt.Errorf("%s:%d: %w", file, r.Seq, err)
			}
		}
		var e evidence.Entry
		switch r.Type {
		case "run-started":
			e = evidence.Entry{Action: "run", Detail: pick(d, "id", "playbook", "source", "digest", "incident", "dryRun", "forced")}
			if err := addAlert(b, r, env); err != nil {
				return err
			}
		case "step-finished":
			detail := pick(d, "name", "status", "changed", "error", "warnings")
			if w, ok := d["writes"].([]any); ok {
				detail["writes"] = len(w)
			}
			detail["time"] = r.Time
			e = evidence.Entry{Action: "run-step", Detail: detail}
		default:
			continue
		}
		if err := b.Custody(e); err != nil {
			return err
		}
	}
	_, err = b.Put(JournalFile, bytes.NewReader(raw), evidence.Source{Kind: "journal", Cluster: env.Cluster, Note: fmt.Sprintf("%d records up to the seal step", len(recs.Records))})
	return err
}

// AlertFile is where collect.seal puts the alert that triggered the run,
// when one did (kir serve): the alert as the run's journal recorded it on
// receipt, the falco.Alert's Vars.
const AlertFile = "run/alert.json"

// addAlert writes AlertFile from the run-started record r, with a custody
// entry, when the run came from an alert; a rerun keeps the file there.
func addAlert(b *evidence.Bundle, r journal.Record, env action.Env) error {
	var started struct {
		ID    string          `json:"id"`
		Alert json.RawMessage `json:"alert"`
	}
	if err := json.Unmarshal(r.Data, &started); err != nil {
		return fmt.Errorf("the run's journal, record %d: %w", r.Seq, err)
	}
	var fields map[string]any
	if len(started.Alert) == 0 || json.Unmarshal(started.Alert, &fields) != nil || len(fields) == 0 {
		return nil
	}
	if _, ok := b.Has(AlertFile); ok {
		return nil
	}
	var body bytes.Buffer
	if err := json.Indent(&body, started.Alert, "", "  "); err != nil {
		return fmt.Errorf("the run's journal, record %d: %w", r.Seq, err)
	}
	body.WriteByte('\n')
	src := evidence.Source{Kind: "alert", Cluster: env.Cluster, Collected: r.Time,
		Note: fmt.Sprintf("the alert that started run %s, as its journal recorded it when the run started", started.ID)}
	if _, err := b.Put(AlertFile, &body, src); err != nil {
		return err
	}
	detail := pick(fields, "rule", "priority", "time", "uuid", "hostname")
	detail["run"], detail["file"] = started.ID, AlertFile
	return b.Custody(evidence.Entry{Action: "alert", Detail: detail})
}

// pick copies the keys of d that are set.
func pick(d map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := d[k]; ok && v != nil {
			out[k] = v
		}
	}
	return out
}

// CustodyParams are collect.custody's parameters.
type CustodyParams struct {
	Bundle string   `json:"bundle" kir:"required" doc:"Sealed evidence bundle directory."`
	Key    string   `json:"key" doc:"Private key the bundle was sealed with; required when it was signed."`
	Entry  string   `json:"entry" kir:"required" doc:"What was done: release, export, …"`
	Run    string   `json:"run" doc:"The run that did it (run.id): a rerun does not append its entry twice."`
	Pods   []string `json:"pods" doc:"The pods it concerns, namespace/name."`
	Note   string   `json:"note" doc:"Anything else the auditor should read."`
}

// Validate accepts any parameters.
func (p CustodyParams) Validate() error { return nil }

// CustodyOutput is collect.custody's output.
type CustodyOutput struct {
	Bundle string `json:"bundle"`
	Entry  string `json:"entry"`
	// Already is set when this run had appended the entry before.
	Already bool `json:"already,omitempty"`
}

type custodyDetail struct {
	Run      string   `json:"run,omitempty"`
	Incident string   `json:"incident,omitempty"`
	Pods     []string `json:"pods,omitempty"`
	Note     string   `json:"note,omitempty"`
}

func appendCustody(ctx context.Context, env action.Env, p CustodyParams) (action.Result, error) {
	out := CustodyOutput{Bundle: p.Bundle, Entry: p.Entry}
	var signer evidence.Signer
	if p.Key != "" {
		var err error
		if signer, err = evidence.LoadSigner(p.Key); err != nil {
			return action.Result{}, err
		}
	}
	s, err := evidence.Show(p.Bundle)
	if err != nil {
		return action.Result{}, err
	}
	if p.Run != "" {
		for _, c := range s.Custody {
			var d custodyDetail
			if raw, ok := c.Detail.(json.RawMessage); ok && c.PostSeal && c.Action == p.Entry && json.Unmarshal(raw, &d) == nil && d.Run == p.Run {
				out.Already = true
				return action.Result{Output: out}, nil
			}
		}
	}
	if !env.DryRun.Persists() {
		return action.Result{Changed: true, Output: out}, nil
	}
	e := evidence.Entry{
		Action: p.Entry, Actor: env.Actor, Version: env.Version,
		Detail: custodyDetail{Run: p.Run, Incident: env.Incident, Pods: p.Pods, Note: p.Note},
	}
	if err := evidence.AppendCustody(p.Bundle, e, signer); err != nil {
		return action.Result{}, err
	}
	return action.Result{Changed: true, Output: out}, nil
}
