package collect

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/agent"
	"kir.dev/kir/evidence"
)

// NodeParams are collect.node-capture's parameters.
type NodeParams struct {
	Bundle  string   `json:"bundle" kir:"required" doc:"Evidence bundle directory."`
	Pods    []string `json:"pods" kir:"required" doc:"namespace/name of each pod, as collect.snapshot-pod outputs them."`
	Timeout string   `json:"timeout,omitempty" doc:"How long to wait for each pod's node agent to seal its capture (a Go duration; default 2m)."`
}

// Validate checks the pods and the timeout.
func (p NodeParams) Validate() error {
	_, err := p.timeout()
	return errors.Join(err, PodParams{Pods: p.Pods}.Validate())
}

func (p NodeParams) timeout() (time.Duration, error) {
	if p.Timeout == "" {
		return 2 * time.Minute, nil
	}
	d, err := time.ParseDuration(p.Timeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout %q: want a positive duration such as 2m", p.Timeout)
	}
	return d, nil
}

// NodeOutput is collect.node-capture's output.
type NodeOutput struct {
	Bundle string            `json:"bundle"`
	Pods   []NodeCaptureInfo `json:"pods"`
}

// NodeCaptureInfo is what was fetched of one pod's capture.
type NodeCaptureInfo struct {
	Pod   string `json:"pod"`
	Node  string `json:"node,omitempty"`
	Agent string `json:"agent,omitempty"`
	// Capture is the capture's id on the node.
	Capture string `json:"capture,omitempty"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
	// Note says why nothing (or not everything) was fetched.
	Note string `json:"note,omitempty"`
}

// NodeRules are what collect.node-capture needs at cluster scope; it also
// needs pods/proxy in the node agents' namespace, which the node-agent
// component of deploy/ grants kir serve (Role kir-node-capture).
func NodeRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule("", []string{"pods"}, "get"),
		rule("coordination.k8s.io", []string{"leases"}, "get"),
		rule("networking.k8s.io", []string{"networkpolicies"}, "get", "patch"),
	}
}

// The kinds of the capture's files in the bundle (evidence.Source.Kind).
const (
	KindNodeCapture = "node-capture"
	KindProcesses   = "processes"
	KindSockets     = "sockets"
	KindExecutable  = "executable"
	KindLayer       = "layer"
	KindLayerIndex  = "layer-index"
)

// NodeDir is the folder, in a pod's evidence, of its node agent's capture.
const NodeDir = "node"

func collectNode(ctx context.Context, env action.Env, p NodeParams) (action.Result, error) {
	env = env.Defaults()
	out := NodeOutput{Bundle: p.Bundle, Pods: []NodeCaptureInfo{}}
	timeout, err := p.timeout()
	if err != nil {
		return action.Result{}, err
	}
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
	j := &action.WriteLog{Dry: env.DryRun}
	var errs, warns []string
	for _, s := range p.Pods {
		ns, name, _ := strings.Cut(s, "/")
		f := &fetch{env: env, sink: resumed{b}, j: j, dir: path.Join(PodDir(ns, name), NodeDir)}
		info, err := f.pod(ctx, ns, name, timeout)
		out.Pods = append(out.Pods, info)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s, err))
		} else if info.Note != "" {
			warns = append(warns, s+": "+info.Note)
		}
	}
	res := action.Result{Changed: len(j.Writes()) > 0, Output: out, Writes: j.Writes(), Warnings: warns}
	if len(errs) > 0 {
		return res, errors.New(strings.Join(errs, "; "))
	}
	return res, nil
}

// fetch fetches one pod's capture from its node agent into the bundle.
type fetch struct {
	env  action.Env
	sink evidence.Sink
	j    *action.WriteLog
	dir  string

	pod0     *corev1.Pod
	endpoint agent.Endpoint
	key      string
	// open opens a file of the capture; nil is the agent's, through
	// pods/proxy (get).
	open func(ctx context.Context, id, name string) (io.ReadCloser, error)
	// idle bounds a transfer without a byte (0: transferIdle).
	idle time.Duration
}

// pod waits for the agent's capture of the pod to be sealed, then
// fetches it. A pod no agent captured is a note, not an error: kir
// contain works without agents.
func (f *fetch) pod(ctx context.Context, ns, name string, timeout time.Duration) (NodeCaptureInfo, error) {
	info := NodeCaptureInfo{Pod: ns + "/" + name}
	pod, err := f.env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		info.Note = fmt.Sprintf("reading the pod: %v; no node capture fetched", err)
		return info, f.note(info)
	}
	f.pod0, info.Node = pod, pod.Spec.NodeName
	var ok bool
	var note string
	if f.endpoint, ok, note = f.agentEndpoint(ctx, pod.Spec.NodeName); !ok {
		info.Note = note
		return info, f.note(info)
	}
	rec, note := f.awaitCapture(ctx, pod, timeout)
	if rec == nil {
		info.Note = note
		return info, f.note(info)
	}
	info.Capture = rec.ID
	info.Agent = f.endpoint.Namespace + "/" + f.endpoint.Pod
	if err := f.grant(ctx, pod); err != nil {
		return info, fmt.Errorf("setting the capture key on the pod's quarantine policy: %w", err)
	}
	m, err := f.manifest(ctx, pod, rec)
	if err != nil {
		return info, err
	}
	if err := checkManifest(m); err != nil {
		return info, fmt.Errorf("the capture's manifest (%s): %w", path.Join(f.dir, agent.ManifestName), err)
	}
	info.Files++
	var errs []error
	for _, file := range m.Files {
		n, err := f.file(ctx, rec.ID, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info.Files++
		info.Bytes += n
	}
	if len(m.Errors) > 0 {
		info.Note = fmt.Sprintf("the agent could not take everything (%d errors, listed in %s)", len(m.Errors), path.Join(f.dir, agent.ManifestName))
	}
	return info, errors.Join(errs...)
}

// note records in custody why a pod's capture was not fetched.
func (f *fetch) note(info NodeCaptureInfo) error {
	return f.sink.Custody(evidence.Entry{Action: "note", Detail: noteDetail{Pod: info.Pod, Part: "node capture", Note: info.Note}})
}

// awaitCapture waits for the pod's report to hold a sealed capture. It
// returns nil and why when there is none to fetch.
func (f *fetch) awaitCapture(ctx context.Context, pod *corev1.Pod, timeout time.Duration) (*agent.CaptureRecord, string) {
	leases := f.env.Kube.CoordinationV1().Leases(f.env.KirNamespace)
	name := agent.ReportName(action.QuarantineValue(pod.UID))
	var rec *agent.CaptureRecord
	var last string
	start := time.Now()
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			// The agent reports as soon as it sees the label: by now (the
			// run waited for its confirmation) a report that is still
			// missing will not come (a fallback policy, say).
			last = fmt.Sprintf("no report of the node agent (Lease %s/%s: %v)", f.env.KirNamespace, name, err)
			return time.Since(start) > noReportWait, nil
		}
		r, err := agent.ReportOf(l)
		switch {
		case err != nil:
			last = err.Error()
			return false, nil
		case r.UID != string(pod.UID):
			last = "the node agent's report is of another pod"
			return false, nil
		case r.Capture == nil:
			last = "the node agent keeps no capture of the pod"
			return r.Final(), nil
		case r.Capture.State == agent.CaptureTaking:
			last = "the node agent's capture was still being taken"
			return false, nil
		case r.Capture.State != agent.CaptureReady:
			last = "the node agent's capture failed: " + r.Capture.Error
			return true, nil
		}
		rec = r.Capture
		return true, nil
	})
	if rec != nil {
		return rec, ""
	}
	if err != nil && ctx.Err() == nil {
		last += fmt.Sprintf(" (waited %s)", timeout)
	}
	return nil, last + "; no node capture fetched"
}

// noReportWait is how long a missing report is waited for.
const noReportWait = 15 * time.Second

// agentEndpoint finds the agent of node and checks that the pod it names
// runs there.
func (f *fetch) agentEndpoint(ctx context.Context, node string) (agent.Endpoint, bool, string) {
	name := agent.HeartbeatName(node)
	l, err := f.env.Kube.CoordinationV1().Leases(f.env.KirNamespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return agent.Endpoint{}, false, fmt.Sprintf("no kir node agent on %s (no Lease %s/%s): the pod's processes, connections and written files were not captured", node, f.env.KirNamespace, name)
	case err != nil:
		return agent.Endpoint{}, false, fmt.Sprintf("reading the node agent's heartbeat (Lease %s/%s): %v; no node capture fetched", f.env.KirNamespace, name, err)
	}
	if !agent.Alive(l, f.env.Now()) {
		return agent.Endpoint{}, false, fmt.Sprintf("no node agent answers on %s (its heartbeat, Lease %s/%s, is stale); no node capture fetched", node, f.env.KirNamespace, name)
	}
	e, ok := agent.EndpointOf(l)
	if !ok {
		return e, false, fmt.Sprintf("the node agent of %s serves no captures (no pod or port in Lease %s/%s); no node capture fetched", node, f.env.KirNamespace, name)
	}
	p, err := f.env.Kube.CoreV1().Pods(e.Namespace).Get(ctx, e.Pod, metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != node {
		return e, false, fmt.Sprintf("the node agent's pod %s/%s does not run on %s; no node capture fetched", e.Namespace, e.Pod, node)
	}
	return e, true, ""
}

// grant makes a key for this fetch and puts its hash on the pod's
// quarantine policy, where the agent checks it. The key stays in memory.
func (f *fetch) grant(ctx context.Context, pod *corev1.Pod) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	f.key = hex.EncodeToString(raw)
	sum := sha256.Sum256([]byte(f.key))
	name := action.PolicyName(action.QuarantineValue(pod.UID))
	apply := networkingv1ac.NetworkPolicy(name, pod.Namespace).WithAnnotations(map[string]string{action.AnnotationCaptureKey: hex.EncodeToString(sum[:])})
	return f.j.Do(action.Write{Verb: "apply", Kind: "NetworkPolicy", Namespace: pod.Namespace, Name: name, Body: apply}, func() (any, error) {
		policies := f.env.Kube.NetworkingV1().NetworkPolicies(pod.Namespace)
		cur, err := policies.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if !isQuarantinePolicy(cur, pod) {
			return nil, fmt.Errorf("NetworkPolicy %s/%s is not kir's quarantine policy of the pod", pod.Namespace, name)
		}
		apply.WithUID(cur.UID) // only the existing policy: apply would create one
		return policies.Apply(ctx, apply, metav1.ApplyOptions{FieldManager: action.FieldManagerCapture, Force: true})
	})
}

func isQuarantinePolicy(p *networkingv1.NetworkPolicy, pod *corev1.Pod) bool {
	return p.Labels[action.LabelManagedBy] == action.ManagedByKir &&
		p.Spec.PodSelector.MatchLabels[action.LabelQuarantine] == action.QuarantineValue(pod.UID)
}

// get streams a file of the capture.
func (f *fetch) get(ctx context.Context, id, name string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	open := f.proxy
	if f.open != nil {
		open = f.open
	}
	body, err := open(ctx, id, name)
	if err != nil {
		cancel()
		return nil, err
	}
	idle := f.idle
	if idle == 0 {
		idle = transferIdle
	}
	return &idleBody{ReadCloser: body, cancel: cancel, timer: time.AfterFunc(idle, cancel), idle: idle}, nil
}

// transferIdle is how long a transfer may go without a byte: an agent
// that stalls (or a pod that stalls it) does not hold the run.
const transferIdle = 30 * time.Second

// idleBody cancels its request once no byte came for idle.
type idleBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	idle   time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}

// proxy streams a file of the capture through the API server's pods/proxy.
func (f *fetch) proxy(ctx context.Context, id, name string) (io.ReadCloser, error) {
	q := action.QuarantineValue(f.pod0.UID)
	return f.env.Kube.CoreV1().RESTClient().Get().
		Namespace(f.endpoint.Namespace).Resource("pods").SubResource("proxy").
		Name(fmt.Sprintf("https:%s:%d", f.endpoint.Pod, f.endpoint.Port)).
		Suffix(agent.CapturePath(q, id, name)).
		SetHeader(agent.HeaderCaptureKey, f.key).
		Stream(ctx)
}

// manifest fetches the capture's manifest, which must hash to what the
// agent reported through the API server.
func (f *fetch) manifest(ctx context.Context, pod *corev1.Pod, rec *agent.CaptureRecord) (agent.Manifest, error) {
	var m agent.Manifest
	if raw, ok, err := f.fetched(agent.ManifestName, rec.Manifest); ok || err != nil {
		// A resumed run: the manifest is the bundle's, if it is this
		// capture's.
		if err != nil {
			return m, err
		}
		return m, f.decodeManifest(raw, pod, rec, &m)
	}
	body, err := f.get(ctx, rec.ID, agent.ManifestName)
	if err != nil {
		return m, fmt.Errorf("fetching the capture's manifest from %s/%s: %w", f.endpoint.Namespace, f.endpoint.Pod, err)
	}
	defer body.Close()
	var raw bytes.Buffer
	limited := io.TeeReader(io.LimitReader(body, maxCaptureManifest), &raw)
	if _, err := f.put(agent.ManifestName, limited, agent.CaptureFile{Name: agent.ManifestName, SHA256: rec.Manifest, Size: -1}, rec.ID); err != nil {
		return m, err
	}
	return m, f.decodeManifest(raw.Bytes(), pod, rec, &m)
}

func (f *fetch) decodeManifest(raw []byte, pod *corev1.Pod, rec *agent.CaptureRecord, m *agent.Manifest) error {
	if err := json.Unmarshal(raw, m); err != nil {
		return fmt.Errorf("decoding the capture's manifest: %w", err)
	}
	if m.UID != string(pod.UID) || m.ID != rec.ID {
		return fmt.Errorf("the capture's manifest is of another pod or capture (%s, %s)", m.UID, m.ID)
	}
	return nil
}

// fetched returns, on a resumed run, the bytes of a file the bundle
// already holds under name, if it hashes as want: a file of another
// capture (the agent took a new one since) is an error, not a mix.
func (f *fetch) fetched(name, want string) ([]byte, bool, error) {
	b, ok := f.sink.(interface {
		Has(name string) (evidence.File, bool)
		Dir() string
	})
	if !ok {
		return nil, false, nil
	}
	p := path.Join(f.dir, name)
	have, ok := b.Has(p)
	if !ok {
		return nil, false, nil
	}
	if have.SHA256 != want {
		return nil, true, fmt.Errorf("the bundle already holds %s hashing %s, not %s as the agent's capture lists it (a transfer that failed, or another capture): fetch it into a new bundle", p, have.SHA256, want)
	}
	if name != agent.ManifestName {
		return nil, true, nil
	}
	raw, err := os.ReadFile(filepath.Join(b.Dir(), filepath.FromSlash(p)))
	if err != nil {
		return nil, true, fmt.Errorf("reading %s from the bundle: %w", p, err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != want {
		return nil, true, fmt.Errorf("%s in the bundle no longer hashes as recorded", p)
	}
	return raw, true, nil
}

// checkManifest refuses a manifest that names a file the agent could not
// have written, twice, or without a digest and size: its names become
// paths in the bundle and each is one request to the agent.
func checkManifest(m agent.Manifest) error {
	if len(m.Files) > maxCaptureFiles {
		return fmt.Errorf("lists %d files, more than %d", len(m.Files), maxCaptureFiles)
	}
	seen := make(map[string]bool, len(m.Files))
	var errs []error
	for i, file := range m.Files {
		switch {
		case !agent.ValidCaptureName(file.Name) || file.Name == agent.ManifestName:
			errs = append(errs, fmt.Errorf("files[%d]: %q is not a capture file's name", i, file.Name))
		case seen[file.Name]:
			errs = append(errs, fmt.Errorf("files[%d]: %s is listed twice", i, file.Name))
		case !isSHA256(file.SHA256):
			errs = append(errs, fmt.Errorf("files[%d] (%s): %q is not a hex SHA-256", i, file.Name, file.SHA256))
		case file.Size < 0:
			errs = append(errs, fmt.Errorf("files[%d] (%s): negative size %d", i, file.Name, file.Size))
		}
		seen[file.Name] = true
	}
	return errors.Join(errs...)
}

// maxCaptureFiles bounds the files of one capture: a few JSON files, one
// executable per deleted binary, two files per container.
const maxCaptureFiles = 10_000

func isSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxCaptureManifest bounds a capture's manifest: it lists a few hundred
// files at most.
const maxCaptureManifest = 4 << 20

// file fetches one file the manifest lists.
func (f *fetch) file(ctx context.Context, id string, want agent.CaptureFile) (int64, error) {
	if _, ok, err := f.fetched(want.Name, want.SHA256); ok || err != nil {
		return 0, err // fetched by an earlier run, and recorded then
	}
	body, err := f.get(ctx, id, want.Name)
	if err != nil {
		return 0, fmt.Errorf("fetching %s from %s/%s: %w", want.Name, f.endpoint.Namespace, f.endpoint.Pod, err)
	}
	defer body.Close()
	// One byte past the size listed is enough to tell that the agent sent
	// more: the rest is never written.
	got, err := f.put(want.Name, io.LimitReader(body, want.Size+1), want, id)
	return got.Size, err
}

// put writes a fetched file into the bundle, hashed by the bundle's
// writer, and records the transfer in custody: what the agent said it
// wrote, what arrived, whether they match.
func (f *fetch) put(name string, body io.Reader, want agent.CaptureFile, id string) (evidence.File, error) {
	src := evidence.Source{Kind: captureKind(name), Cluster: f.env.Cluster, Namespace: f.pod0.Namespace, Pod: f.pod0.Name,
		UID: string(f.pod0.UID), Node: f.pod0.Spec.NodeName, Collected: f.env.Now().UTC()}
	switch src.Kind {
	case KindProcesses:
		src.Sensitive, src.Note = true, "command lines as the processes hold them: they may carry secrets passed as arguments"
	case KindLayer:
		src.Sensitive, src.Note = true, "the files the container wrote, as written: they may hold credentials it read or copied"
	}
	if c, ok := strings.CutPrefix(name, "layer/"); ok {
		src.Container = strings.TrimSuffix(strings.TrimSuffix(c, ".tar"), ".json")
	}
	got, err := f.sink.Put(path.Join(f.dir, name), body, src)
	if err != nil {
		return got, fmt.Errorf("writing %s: %w", name, err)
	}
	t := transfer{Pod: f.pod0.Namespace + "/" + f.pod0.Name, Node: f.pod0.Spec.NodeName, Agent: f.endpoint.Namespace + "/" + f.endpoint.Pod,
		Via: "pods/proxy", Capture: id, File: got.Path, AgentSHA256: want.SHA256, SHA256: got.SHA256, Bytes: got.Size}
	t.Match = got.SHA256 == want.SHA256 && (want.Size < 0 || got.Size == want.Size)
	if err := f.sink.Custody(evidence.Entry{Action: "transfer", Detail: t}); err != nil {
		return got, fmt.Errorf("recording the transfer of %s: %w", name, err)
	}
	if !t.Match {
		return got, fmt.Errorf("%s: received %d bytes hashing %s, the agent wrote %d hashing %s", name, got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return got, nil
}

// transfer is the custody detail of one file fetched from a node agent.
type transfer struct {
	Pod         string `json:"pod"`
	Node        string `json:"node"`
	Agent       string `json:"agent"`
	Via         string `json:"via"`
	Capture     string `json:"capture"`
	File        string `json:"file"`
	AgentSHA256 string `json:"agentSHA256"`
	SHA256      string `json:"sha256"`
	Bytes       int64  `json:"bytes"`
	Match       bool   `json:"match"`
}

func captureKind(name string) string {
	switch {
	case name == agent.ManifestName:
		return KindNodeCapture
	case name == "processes.json":
		return KindProcesses
	case name == "sockets.json":
		return KindSockets
	case strings.HasPrefix(name, "exe/"):
		return KindExecutable
	case strings.HasSuffix(name, ".tar"):
		return KindLayer
	}
	return KindLayerIndex
}
