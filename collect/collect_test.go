package collect_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/collect"
	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kubetest"
)

// TestPod collects a Deployment's pod with everything around it and
// checks each part: the files, their sources, the owner chain, what was
// selected and what was not, logs, events, secret references and images.
func TestPod(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	w := newWorld(t, "collect")
	pod := w.webApp(t)
	w.event(t, w.ns, pod.Name, corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: w.ns, Name: pod.Name, UID: pod.UID}, "PodEvidence")
	w.event(t, metav1.NamespaceDefault, w.node, corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: w.node, UID: "irrelevant"}, "NodeEvidence")

	sink := newDirSink(t.TempDir())
	res, err := collect.Pod(ctx, client, w.ns, pod.Name, collect.Options{
		Sink: sink, Cluster: cluster.Config.Host,
		Images: true, Insecure: true, PullSecrets: true, Checkpoint: true,
	})
	if err != nil {
		t.Fatalf("collect.Pod: %v\nnotes:\n%s", err, strings.Join(res.Notes, "\n"))
	}

	t.Logf("notes:\n%s", strings.Join(res.Notes, "\n"))
	rs := pod.OwnerReferences[0].Name
	for _, f := range []string{
		"pod.json",
		"logs/init.log", "logs/app.log", "logs/app.previous.log", "logs/side.log", "logs/debugger.log",
		"events/pod.json", "events/node.json",
		"manifests/replicaset/" + rs + ".json", "manifests/deployment/web.json",
		"manifests/node/" + w.node + ".json", "manifests/serviceaccount/web-sa.json",
		"manifests/service/web.json",
		"manifests/networkpolicy/web-policy.json", "manifests/networkpolicy/default-deny.json",
		"manifests/rolebinding/web-reader.json", "manifests/role/web-reader.json",
		"manifests/rolebinding/all-sa-view.json", "manifests/clusterrole/view.json",
		// Every token is in system:authenticated.
		"manifests/clusterrolebinding/system%3Adiscovery.json", "manifests/clusterrole/system%3Adiscovery.json",
		"manifests/configmap/web-config.json", "manifests/configmap/web-env.json",
		"manifests/configmap/kube-root-ca.crt.json",
		"manifests/secret-references.json",
		"images/images.json", "images/0/oci-layout", "images/0/index.json", "images/1/oci-layout", "images/1/index.json",
	} {
		if _, ok := sink.file(f); !ok {
			t.Errorf("missing %s", f)
		}
	}
	for _, f := range []string{
		"manifests/service/other.json", "manifests/networkpolicy/other-policy.json",
		"manifests/rolebinding/other-edit.json", "manifests/clusterrole/edit.json",
		"manifests/configmap/other-config.json",
		// kwok has no previous log for these: a note each, no file.
		"logs/init.previous.log", "logs/side.previous.log",
	} {
		if _, ok := sink.file(f); ok {
			t.Errorf("%s collected; it has nothing to do with the pod", f)
		}
	}
	if len(res.Files) != len(sink.files) {
		t.Errorf("Result lists %d files, the sink got %d", len(res.Files), len(sink.files))
	}

	t.Run("sources", func(t *testing.T) {
		for _, f := range res.Files {
			s := f.Source
			if s.Cluster != cluster.Config.Host || s.Namespace != w.ns || s.Pod != pod.Name || s.UID != string(pod.UID) || s.Node != w.node || s.Collected.IsZero() {
				t.Errorf("%s: source %+v does not say which pod, where and when", f.Path, s)
			}
			fromAPI := !strings.HasPrefix(f.Path, "images/") && f.Path != "manifests/secret-references.json"
			if fromAPI && s.AuditID == "" {
				t.Errorf("%s: read from the API server, but no Audit-Id", f.Path)
			}
			if strings.HasPrefix(f.Path, "images/") && f.Path != "images/images.json" && (s.Kind != "image" || s.Image == "") {
				t.Errorf("%s: source %+v, want kind image with its reference", f.Path, s)
			}
			if strings.HasPrefix(f.Path, "logs/") && (s.Kind != "log" || s.Container == "" || s.Truncated) {
				t.Errorf("%s: source %+v, want a whole log of one container", f.Path, s)
			}
		}
	})

	t.Run("pod as returned", func(t *testing.T) {
		var got corev1.Pod
		readJSON(t, sink, "pod.json", &got)
		if got.Kind != "Pod" || got.UID != pod.UID || len(got.ManagedFields) == 0 || len(got.Spec.EphemeralContainers) != 1 {
			t.Errorf("pod.json: kind %q, uid %s, %d managedFields, %d ephemeral containers; want the live pod with managedFields", got.Kind, got.UID, len(got.ManagedFields), len(got.Spec.EphemeralContainers))
		}
	})

	t.Run("manifests", func(t *testing.T) {
		for path := range sink.files {
			if !strings.HasPrefix(path, "manifests/") || path == "manifests/secret-references.json" {
				continue
			}
			var m metav1.PartialObjectMetadata
			readJSON(t, sink, path, &m)
			kind := strings.Split(path, "/")[1]
			if strings.ToLower(m.Kind) != kind || m.APIVersion == "" || len(m.ManagedFields) != 0 {
				t.Errorf("%s: kind %q apiVersion %q with %d managedFields; want kind %s, managedFields stripped", path, m.Kind, m.APIVersion, len(m.ManagedFields), kind)
			}
		}
		var d metav1.PartialObjectMetadata
		readJSON(t, sink, "manifests/deployment/web.json", &d)
		var r metav1.PartialObjectMetadata
		readJSON(t, sink, "manifests/replicaset/"+rs+".json", &r)
		if len(r.OwnerReferences) != 1 || r.OwnerReferences[0].UID != d.UID {
			t.Errorf("the ReplicaSet's owner %+v is not the collected Deployment %s", r.OwnerReferences, d.UID)
		}
	})

	t.Run("logs", func(t *testing.T) {
		app := string(mustRead(t, sink, "logs/app.log"))
		if n := strings.Count(app, "\n"); n != appLogLines || !strings.HasPrefix(app, logTime+" "+appLogLine+" #0\n") {
			t.Errorf("logs/app.log: %d lines starting %.80q; want %d timestamped lines", n, app, appLogLines)
		}
		if prev := string(mustRead(t, sink, "logs/app.previous.log")); prev != logTime+" "+appPreviousLog+"\n" {
			t.Errorf("logs/app.previous.log = %q", prev)
		}
		for _, c := range []string{"init", "side", "debugger"} {
			if got := string(mustRead(t, sink, "logs/"+c+".log")); !strings.Contains(got, otherLog) {
				t.Errorf("logs/%s.log = %q, want kwok's log for it", c, got)
			}
			wantNote(t, res, "container "+c+" has no previous log")
		}
	})

	t.Run("events", func(t *testing.T) {
		var podEvents, nodeEvents corev1.EventList
		readJSON(t, sink, "events/pod.json", &podEvents)
		readJSON(t, sink, "events/node.json", &nodeEvents)
		if !hasReason(podEvents, "PodEvidence") || hasReason(podEvents, "NodeEvidence") {
			t.Errorf("pod events %v: want PodEvidence only", reasons(podEvents))
		}
		if !hasReason(nodeEvents, "NodeEvidence") || hasReason(nodeEvents, "PodEvidence") {
			t.Errorf("node events %v: want NodeEvidence", reasons(nodeEvents))
		}
	})

	t.Run("secret references", func(t *testing.T) {
		var got collect.SecretReferences
		readJSON(t, sink, "manifests/secret-references.json", &got)
		want := collect.SecretReferences{
			APIVersion: "kir.dev/v1alpha1", Kind: "SecretReferences", Namespace: w.ns, Pod: pod.Name,
			References: []collect.SecretReference{
				{Secret: "web-secret", Via: "volume", Volume: "secret", Keys: []collect.SecretKey{{Key: "password", Path: "db/password"}}},
				{Secret: "web-secret", Via: "env", Container: "app", Env: "DB_PASSWORD", Keys: []collect.SecretKey{{Key: "password"}}},
				{Secret: "web-pull", Via: "imagePullSecrets"},
			},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("secret-references.json (-want +got):\n%s", diff)
		}
	})

	t.Run("images", func(t *testing.T) {
		if len(res.Images) != 2 {
			t.Fatalf("%d images, want 2: %+v", len(res.Images), res.Images)
		}
		app, multi := res.Images[0], res.Images[1]
		if app.Reference != appImage.String() || !slices.Equal(app.Containers, []string{"init", "app", "debugger"}) {
			t.Errorf("images/0 = %+v, want %s for init, app and debugger", app, appImage)
		}
		if multi.Reference != multiImage.String() || !slices.Equal(multi.Containers, []string{"side"}) || multi.MediaType != string(types.OCIImageIndex) || multi.Manifests != 3 {
			t.Errorf("images/1 = %+v, want the index %s (3 manifests) for side", multi, multiImage)
		}
		checkLayout(t, filepath.Join(sink.dir, "images/0"), appImage.DigestStr(), false)
		checkLayout(t, filepath.Join(sink.dir, "images/1"), multiImage.DigestStr(), true)
		wantNote(t, res, "registry credentials: the pod's imagePullSecrets web-pull")
	})

	t.Run("checkpoint noted", func(t *testing.T) {
		if len(res.Checkpoints) != 0 {
			t.Errorf("kwok made checkpoints %+v?", res.Checkpoints)
		}
		wantNote(t, res, "cannot checkpoint container app")
	})

	t.Run("no secret value", func(t *testing.T) {
		// What the Secrets hold, raw and as the API encodes it.
		values := []string{w.marker}
		for _, v := range []string{w.marker, w.marker + "-2"} {
			values = append(values, base64.StdEncoding.EncodeToString([]byte(v)))
		}
		found := func(where string, b []byte) {
			for _, v := range values {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("%s holds a secret value (%s)", where, v)
				}
			}
		}
		checked := 0
		err := filepath.WalkDir(sink.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(sink.dir, p)
			if strings.Contains(filepath.ToSlash(rel), "/blobs/") {
				return nil // random image bytes
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			found(rel, b)
			checked++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if checked < 25 {
			t.Errorf("searched %d files only", checked)
		}
		custody, _ := json.Marshal(sink.entries())
		found("custody", custody)
		sources, _ := json.Marshal(res.Files)
		found("the files' sources", sources)
		found("the notes", []byte(strings.Join(res.Notes, "\n")))
		// The Secrets exist and hold the marker: the search could fail.
		s, err := cluster.Client.CoreV1().Secrets(w.ns).Get(ctx, "web-secret", metav1.GetOptions{})
		if err != nil || string(s.Data["password"]) != w.marker {
			t.Fatalf("the planted secret does not hold the marker: %v", err)
		}
	})
}

// TestPodManifest writes pod.json alone, and its Audit-Id is the API
// server's record of the very request that read it.
func TestPodManifest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	w := newWorld(t, "manifest")
	w.simplePod(t, "solo", reg+"/test/app:1", "")
	sink := newDirSink(t.TempDir())
	pod, f, err := collect.PodManifest(ctx, client, w.ns, "solo", collect.Options{Sink: sink, Cluster: cluster.Config.Host})
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != "pod.json" || f.Source.Kind != "manifest" || f.Source.Object != "Pod/"+w.ns+"/solo" || f.Source.UID != string(pod.UID) {
		t.Errorf("file %+v", f)
	}
	if len(sink.files) != 1 {
		t.Errorf("%d files, want pod.json alone", len(sink.files))
	}
	var got corev1.Pod
	readJSON(t, sink, "pod.json", &got)
	if got.Kind != "Pod" || got.APIVersion != "v1" {
		t.Errorf("pod.json is a %s %s, want a v1 Pod", got.APIVersion, got.Kind)
	}
	if diff := cmp.Diff(*pod, got); diff != "" {
		t.Errorf("pod.json differs from the pod read (-read +file):\n%s", diff)
	}

	var event auditEvent
	err = kubetest.Eventually(ctx, 10*time.Second, func(context.Context) (bool, error) {
		var ok bool
		event, ok = findAudit(t, f.Source.AuditID)
		return ok, nil
	})
	if err != nil {
		t.Fatalf("audit ID %q not in the API server's audit log: %v", f.Source.AuditID, err)
	}
	if event.Verb != "get" || event.ObjectRef.Resource != "pods" || event.ObjectRef.Namespace != w.ns || event.ObjectRef.Name != "solo" {
		t.Errorf("audit event %+v: want get pods %s/solo", event, w.ns)
	}
}

// TestLogTruncated: a log longer than the limit keeps its first and last
// bytes around a marked gap; the cut and the whole log's hash and length
// are recorded and noted.
func TestLogTruncated(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "truncate")
	pod := w.simplePod(t, "chatty", reg+"/test/app:1", appImage.String())
	sink := newDirSink(t.TempDir())
	const limit = 1001
	res, err := collect.Pod(t.Context(), client, w.ns, pod.Name, collect.Options{Sink: sink, LogLimitBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	want := wantHeadTail(t, "app", appStream(), limit)
	if got := mustRead(t, sink, "logs/app.log"); !bytes.Equal(got, want.file) {
		t.Errorf("logs/app.log:\n%s\nwant:\n%s", got, want.file)
	}
	f, _ := sink.file("logs/app.log")
	if !f.Source.Truncated || !strings.Contains(f.Source.Note, want.cut.SHA256) {
		t.Errorf("logs/app.log: source %+v; want truncated, the whole log's hash noted", f.Source)
	}
	var cut logCut
	readJSON(t, sink, "logs/app.log.cut.json", &cut)
	if diff := cmp.Diff(want.cut, cut); diff != "" {
		t.Errorf("logs/app.log.cut.json (-want +got):\n%s", diff)
	}
	if p, _ := sink.file("logs/app.previous.log"); p.Source.Truncated {
		t.Errorf("logs/app.previous.log is short but marked truncated")
	}
	wantNote(t, res, fmt.Sprintf("the log of container app: %d bytes left out between the first 501 and the last 500", want.cut.SkippedBytes))
}

// TestCheckpointOnKwok: the checkpoint cannot be made; that is noted, and
// the rest is collected. Here the API server itself refuses to proxy to a
// node whose address is 127.0.0.1 ("address not allowed"), so the request
// never reaches kwok, which has no checkpoint endpoint either; a kubelet
// that answers is TestCheckpoint's.
func TestCheckpointOnKwok(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "checkpoint")
	pod := w.simplePod(t, "frozen", reg+"/test/app:1", "")
	sink := newDirSink(t.TempDir())
	dir := "pods/" + w.ns + "/frozen"
	res, err := collect.Pod(t.Context(), client, w.ns, pod.Name, collect.Options{Sink: sink, Checkpoint: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Checkpoints) != 0 {
		t.Errorf("checkpoints %+v from kwok", res.Checkpoints)
	}
	n := wantNote(t, res, "node "+w.node+" cannot checkpoint container app")
	t.Logf("kwok's answer: %s", n)
	for _, f := range []string{"pod.json", "logs/app.log", "events/pod.json", "manifests/node/" + w.node + ".json"} {
		if _, ok := sink.file(dir + "/" + f); !ok {
			t.Errorf("%s missing: the failed checkpoint stopped collection", f)
		}
	}
	found := false
	for _, e := range sink.entries() {
		if b, _ := json.Marshal(e.Detail); e.Action == "note" && strings.Contains(string(b), "checkpoint") {
			found = true
		}
	}
	if !found {
		t.Error("no custody note about the checkpoint")
	}
}

// TestPodNotFound: a pod that cannot be read stops everything, with an
// error that says so.
func TestPodNotFound(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "missing")
	sink := newDirSink(t.TempDir())
	_, err := collect.Pod(t.Context(), client, w.ns, "ghost", collect.Options{Sink: sink})
	if err == nil || !strings.Contains(err.Error(), "ghost") || len(sink.files) != 0 {
		t.Errorf("err %v, %d files; want a not-found error and nothing written", err, len(sink.files))
	}
	if _, err := collect.Pod(t.Context(), client, w.ns, "ghost", collect.Options{}); !errors.Is(err, collect.ErrNoSink) {
		t.Errorf("without a sink: %v, want ErrNoSink", err)
	}
}

// checkLayout reads an OCI layout back with go-containerregistry and
// checks it (kubetest.CheckLayout).
func checkLayout(t *testing.T, dir, digest string, index bool) {
	t.Helper()
	if err := kubetest.CheckLayout(dir, digest, index); err != nil {
		t.Error(err)
	}
}

func (w *world) event(t *testing.T, ns, name string, obj corev1.ObjectReference, reason string) {
	t.Helper()
	now := metav1.Now()
	_, err := cluster.Client.CoreV1().Events(ns).Create(t.Context(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: name + "."},
		InvolvedObject: obj, Reason: reason, Message: "for the test", Type: corev1.EventTypeNormal,
		FirstTimestamp: now, LastTimestamp: now, Count: 1, Source: corev1.EventSource{Component: "collect-test"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func hasReason(l corev1.EventList, reason string) bool { return slices.Contains(reasons(l), reason) }

func reasons(l corev1.EventList) []string {
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Reason)
	}
	return out
}

// wantNote fails unless a note contains s, and returns it.
func wantNote(t *testing.T, res collect.Result, s string) string {
	t.Helper()
	for _, n := range res.Notes {
		if strings.Contains(n, s) {
			return n
		}
	}
	t.Errorf("no note contains %q; notes:\n%s", s, strings.Join(res.Notes, "\n"))
	return ""
}

func mustRead(t *testing.T, s *dirSink, name string) []byte {
	t.Helper()
	b, err := s.read(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readJSON(t *testing.T, s *dirSink, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(mustRead(t, s, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	AuditID   string `json:"auditID"`
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	ObjectRef struct {
		Resource, Namespace, Name, Subresource string
	} `json:"objectRef"`
}

// findAudit looks up the ResponseComplete event of id in the API
// server's audit log.
func findAudit(t *testing.T, id string) (auditEvent, bool) {
	t.Helper()
	f, err := os.Open(cluster.AuditLog)
	if err != nil {
		return auditEvent{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(id)) {
			continue
		}
		var e auditEvent
		if json.Unmarshal(line, &e) == nil && e.AuditID == id && e.Stage == "ResponseComplete" {
			return e, true
		}
	}
	return auditEvent{}, false
}

var _ evidence.Sink = (*dirSink)(nil)
