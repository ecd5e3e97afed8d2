package serve_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"kir.dev/kir/action"
	"kir.dev/kir/contain"
	"kir.dev/kir/internal/durable"
	"kir.dev/kir/internal/kube"
)

// The floors: what this machine gives any receiver that keeps the rules
// kir serve keeps, built from bare parts (net/http, os.File.Sync,
// client-go) and none of kir's code. The benchmarks print them next to
// kir's figures, so that a goal the machine cannot reach shows as such.
//
// A bareReceiver checks the bearer token, reads the body (1 MiB at most),
// makes it durable (appended to one file, fsynced by group commit) and
// answers 202. Given a kube client, it then contains the alert's pod, once
// per pod, keeping the order kir keeps: the pod read and its manifest
// synced before anything changes, a journal record synced before acting,
// the quarantine policy applied, then the pod labelled and an Event
// written. No evidence beyond the manifest, no cordon, no claim, no
// metrics, no routing.
type bareReceiver struct {
	*httptest.Server
	dir   string
	spool *groupCommit
	kube  kubernetes.Interface
	seen  sync.Map // namespace/pod → struct{}
	// isolated is when each pod's policy was stored (its apply
	// answered), by namespace/pod.
	isolated sync.Map
	runs     sync.WaitGroup
	failed   atomic.Value // error
}

func newBareReceiver(b *testing.B, contains bool) *bareReceiver {
	b.Helper()
	r := &bareReceiver{dir: b.TempDir()}
	f, err := os.OpenFile(filepath.Join(r.dir, "spool"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	r.spool = newGroupCommit(f)
	if contains {
		kc, err := kube.New(kube.Options{Kubeconfig: cluster.Kubeconfig}) // client-go as kir sets it
		if err != nil {
			b.Fatal(err)
		}
		r.kube = kc.Interface
	}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	b.Cleanup(func() {
		r.Close()
		r.runs.Wait()
		r.spool.close()
		if err, _ := r.failed.Load().(error); err != nil {
			b.Errorf("floor receiver: %v", err)
		}
	})
	return r
}

func (r *bareReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if err := r.spool.write(body); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	if r.kube == nil {
		return
	}
	var a struct {
		Fields struct {
			Namespace string `json:"k8s.ns.name"`
			Pod       string `json:"k8s.pod.name"`
		} `json:"output_fields"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		r.failed.Store(err)
		return
	}
	if _, dup := r.seen.LoadOrStore(a.Fields.Namespace+"/"+a.Fields.Pod, struct{}{}); dup {
		return
	}
	r.runs.Go(func() {
		if err := r.contain(a.Fields.Namespace, a.Fields.Pod); err != nil {
			r.failed.Store(err)
		}
	})
}

// contain isolates one pod the way kir's contain-pod does, evidence first.
func (r *bareReceiver) contain(ns, name string) error {
	ctx := context.Background()
	pod, err := r.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(pod)
	if err != nil {
		return err
	}
	dir := filepath.Join(r.dir, ns, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(dir, "pod.json"), manifest); err != nil {
		return err
	}
	if err := durable.SyncDir(dir); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(dir, "journal"), []byte(`{"step":"isolate","started":true}`+"\n")); err != nil {
		return err
	}
	now := time.Now().UTC()
	value := action.QuarantineValue(pod.UID)
	// kir's writes since label first: the quarantine label alone, then
	// the policy carrying the containment record, each under its own
	// field manager.
	label := corev1ac.Pod(name, ns).WithUID(pod.UID).WithLabels(map[string]string{action.LabelQuarantine: value})
	if _, err := r.kube.CoreV1().Pods(ns).Apply(ctx, label, metav1.ApplyOptions{FieldManager: action.FieldManagerQuarantineLabel, Force: true}); err != nil {
		return err
	}
	policy := contain.QuarantinePolicy(pod, contain.AllowList{}, map[string]string{
		action.AnnotationIncident: "floor", action.AnnotationContainedAt: now.Format(time.RFC3339),
		action.AnnotationContainedBy: "admin", action.AnnotationPod: ns + "/" + name,
	})
	if _, err := r.kube.NetworkingV1().NetworkPolicies(ns).Apply(ctx, policy, metav1.ApplyOptions{FieldManager: action.FieldManagerQuarantinePolicy, Force: true}); err != nil {
		return err
	}
	r.isolated.Store(ns+"/"+name, time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", name, now.UnixNano()), Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: name, UID: pod.UID},
		Reason:         "Quarantined", Message: "floor", Type: corev1.EventTypeWarning,
		FirstTimestamp: metav1.NewTime(now), LastTimestamp: metav1.NewTime(now), Count: 1,
	}
	_, err = r.kube.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{})
	return err
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// groupCommit appends records to a file; one fsync covers every record
// appended while the previous one ran.
type groupCommit struct {
	mu      sync.Mutex
	f       *os.File
	waiting []chan error
	kick    chan struct{}
	done    chan struct{}
}

func newGroupCommit(f *os.File) *groupCommit {
	g := &groupCommit{f: f, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go g.loop()
	return g
}

func (g *groupCommit) write(p []byte) error {
	c := make(chan error, 1)
	g.mu.Lock()
	_, err := g.f.Write(p)
	if err == nil {
		g.waiting = append(g.waiting, c)
	}
	g.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return <-c
}

func (g *groupCommit) loop() {
	defer close(g.done)
	for range g.kick {
		g.mu.Lock()
		waiting := g.waiting
		g.waiting = nil
		g.mu.Unlock()
		if len(waiting) == 0 {
			continue
		}
		err := g.f.Sync()
		for _, c := range waiting {
			c <- err
		}
	}
}

func (g *groupCommit) close() {
	close(g.kick)
	<-g.done
	g.f.Close()
}
