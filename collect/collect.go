package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kube"
)

// PodManifest writes pod.json: the pod as the API server returns it now,
// the JSON bytes it sent, managedFields included (they say who changed
// what, and when). It returns the pod it read. contain-pod calls it
// before changing anything.
func PodManifest(ctx context.Context, client kubernetes.Interface, namespace, name string, o Options) (*corev1.Pod, evidence.File, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, evidence.File{}, err
	}
	r := newRun(client, o, namespace, name)
	pod, f, err := r.podManifest(ctx, true)
	if err != nil {
		return nil, evidence.File{}, err
	}
	return pod, f, nil
}

// Pod collects everything about one pod, most volatile first: the pod
// object (unless o.SkipPodManifest), a checkpoint of its running
// containers (o.Checkpoint: memory is the most volatile of all), its
// logs, its Events and its node's, the manifests around it, and its images
// (o.Images). Only a pod that cannot be read stops it; every other failure
// is noted in custody, the rest is collected, and the failures are
// returned joined.
func Pod(ctx context.Context, client kubernetes.Interface, namespace, name string, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	r := newRun(client, o, namespace, name)
	pod, _, err := r.podManifest(ctx, !o.SkipPodManifest)
	if err != nil {
		return r.res, err
	}
	r.pod = pod
	if o.Checkpoint {
		r.checkpoints(ctx)
	}
	r.logs(ctx)
	r.events(ctx)
	r.manifests(ctx)
	if o.Images {
		r.images(ctx)
	}
	if err := o.Sink.Custody(evidence.Entry{Action: "collect", Detail: summary{
		Pod:      namespace + "/" + name,
		UID:      string(pod.UID),
		Files:    len(r.res.Files),
		Notes:    len(r.res.Notes),
		Failures: len(r.errs),
	}}); err != nil {
		r.errs = append(r.errs, fmt.Errorf("recording the collection in custody: %w", err))
	}
	return r.res, errors.Join(r.errs...)
}

// summary is the custody detail of a finished collection.
type summary struct {
	Pod      string `json:"pod"`
	UID      string `json:"uid"`
	Files    int    `json:"files"`
	Notes    int    `json:"notes"`
	Failures int    `json:"failures"`
}

// run is one collection: what it writes to, and what it has done so far.
type run struct {
	client    kubernetes.Interface
	o         Options
	namespace string
	name      string
	pod       *corev1.Pod

	mu   sync.Mutex // guards res and errs: image blobs are written concurrently
	res  Result
	errs []error
}

func newRun(client kubernetes.Interface, o Options, namespace, name string) *run {
	return &run{client: client, o: o, namespace: namespace, name: name}
}

// podManifest reads the pod and, when write is set, writes pod.json: the
// bytes the API server sent, untouched.
func (r *run) podManifest(ctx context.Context, write bool) (*corev1.Pod, evidence.File, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	collected := r.now()
	ctx, auditID := kube.CaptureAuditID(ctx)
	pod, raw, err := getPod(ctx, r.client, r.namespace, r.name)
	if err != nil {
		return nil, evidence.File{}, fmt.Errorf("reading pod %s/%s: %w", r.namespace, r.name, err)
	}
	r.pod = pod
	if !write {
		return pod, evidence.File{}, nil
	}
	src := r.source("manifest")
	src.Collected, src.AuditID = collected, auditID()
	src.Object = "Pod/" + r.namespace + "/" + r.name
	f, err := r.put("pod.json", bytes.NewReader(raw), src)
	if err != nil {
		return nil, evidence.File{}, fmt.Errorf("collecting pod %s/%s: %w", r.namespace, r.name, err)
	}
	return pod, f, nil
}

// getPod reads a pod as JSON and returns it with the bytes the API
// server sent. A client without a REST client (the fake clientset) gets
// the typed object, re-encoded.
func getPod(ctx context.Context, c kubernetes.Interface, namespace, name string) (*corev1.Pod, []byte, error) {
	rc := c.CoreV1().RESTClient()
	if rest, ok := rc.(*rest.RESTClient); rc == nil || (ok && rest == nil) {
		pod, err := c.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, err
		}
		out := pod.DeepCopy()
		out.APIVersion, out.Kind = "v1", "Pod"
		raw, err := json.Marshal(out)
		return pod, raw, err
	}
	raw, err := rc.Get().Namespace(namespace).Resource("pods").Name(name).SetHeader("Accept", "application/json").DoRaw(ctx)
	if err != nil {
		return nil, nil, err
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(raw, pod); err != nil {
		return nil, nil, fmt.Errorf("decoding the API server's answer: %w", err)
	}
	return pod, raw, nil
}

// source is the Source of a file of kind about the pod, read now.
func (r *run) source(kind string) evidence.Source {
	s := evidence.Source{Kind: kind, Cluster: r.o.Cluster, Namespace: r.namespace, Pod: r.name, Collected: r.now()}
	if r.pod != nil {
		s.UID, s.Node = string(r.pod.UID), r.pod.Spec.NodeName
	}
	return s
}

func (r *run) now() time.Time { return r.o.Now().UTC() }

// put writes name (relative to o.Dir) and records the file.
func (r *run) put(name string, body io.Reader, src evidence.Source) (evidence.File, error) {
	name = path.Join(r.o.Dir, name)
	f, err := r.o.Sink.Put(name, body, src)
	if err != nil {
		return f, fmt.Errorf("writing %s: %w", name, err)
	}
	r.mu.Lock()
	r.res.Files = append(r.res.Files, f)
	r.mu.Unlock()
	return f, nil
}

// putJSON writes v as indented JSON.
func (r *run) putJSON(name string, v any, src evidence.Source) (evidence.File, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return evidence.File{}, fmt.Errorf("encoding %s: %w", name, err)
	}
	return r.put(name, bytes.NewReader(append(b, '\n')), src)
}

// noteDetail is the custody detail of a note.
type noteDetail struct {
	Pod  string `json:"pod,omitempty"`
	Part string `json:"part"`
	// Note says what is missing and why it is no failure: a container
	// that never restarted has no previous log.
	Note string `json:"note,omitempty"`
	// Error says what failed.
	Error string `json:"error,omitempty"`
}

// note records an expected absence.
func (r *run) note(part, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.record(noteDetail{Pod: r.podName(), Part: part, Note: msg}, nil)
}

// fail records a failure, to be returned at the end.
func (r *run) fail(part string, err error) {
	r.record(noteDetail{Pod: r.podName(), Part: part, Error: err.Error()}, err)
}

// podName is namespace/name, or "" when collecting no pod (PullImage).
func (r *run) podName() string {
	if r.name == "" {
		return ""
	}
	return r.namespace + "/" + r.name
}

func (r *run) record(d noteDetail, err error) {
	msg := d.Part + ": " + d.Note + d.Error
	r.o.Log.Info("collect: "+msg, "pod", d.Pod)
	cerr := r.o.Sink.Custody(evidence.Entry{Action: "note", Detail: d})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Notes = append(r.res.Notes, msg)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", d.Part, err))
	}
	if cerr != nil {
		r.errs = append(r.errs, fmt.Errorf("recording a note in custody: %w", cerr))
	}
}
