package collect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"kir.dev/kir/evidence"
	"kir.dev/kir/internal/kube"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestDigestReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, imageID, image, want, wantErr string
	}{
		{"containerd", "registry.example/team/app@" + digestA, "registry.example/team/app:1", "registry.example/team/app@" + digestA, ""},
		{"docker-pullable", "docker-pullable://registry.example/app@" + digestA, "app:1", "registry.example/app@" + digestA, ""},
		{"docker hub short name", "docker.io/library/nginx@" + digestA, "nginx", "index.docker.io/library/nginx@" + digestA, ""},
		{"the repository of the ID wins over the spec's (a mirror)", "mirror.example/app@" + digestA, "registry.example/app:1", "mirror.example/app@" + digestA, ""},
		{"bare digest takes the spec's repository", digestB, "registry.example/app:1", "registry.example/app@" + digestB, ""},
		{"bare digest, spec by digest", digestB, "registry.example/app@" + digestA, "registry.example/app@" + digestB, ""},
		{"docker image ID", "docker://" + digestB, "registry.example/app:1", "registry.example/app@" + digestB, ""},
		{"loopback registry", "127.0.0.1:5000/app@" + digestA, "", "127.0.0.1:5000/app@" + digestA, ""},
		{"tag, no digest", "registry.example/app:1", "registry.example/app:1", "", "no reference by digest"},
		{"short digest", "sha256:abc", "registry.example/app:1", "", "sha256:abc"},
		{"bare digest, bad image", digestB, "UPPER/Case:!", "", "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := digestReference(tt.imageID, tt.image)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Name normalises the registry (docker.io is index.docker.io).
			if got := got.Context().Name() + "@" + got.DigestStr(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBindsServiceAccount(t *testing.T) {
	t.Parallel()
	sa := func(ns, name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	group := func(name string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: name} }
	user := func(name string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.UserKind, Name: name} }
	tests := []struct {
		name             string
		subjects         []rbacv1.Subject
		bindingNamespace string
		want             bool
	}{
		{"service account", []rbacv1.Subject{sa("shop", "web")}, "shop", true},
		{"namespace defaults to the binding's", []rbacv1.Subject{sa("", "web")}, "shop", true},
		{"cluster binding needs the namespace", []rbacv1.Subject{sa("", "web")}, "", false},
		{"same name, other namespace", []rbacv1.Subject{sa("other", "web")}, "shop", false},
		{"other account", []rbacv1.Subject{sa("shop", "db")}, "shop", false},
		{"as a user", []rbacv1.Subject{user("system:serviceaccount:shop:web")}, "", true},
		{"another user", []rbacv1.Subject{user("web")}, "", false},
		{"all service accounts", []rbacv1.Subject{group("system:serviceaccounts")}, "", true},
		{"the namespace's service accounts", []rbacv1.Subject{group("system:serviceaccounts:shop")}, "", true},
		{"another namespace's service accounts", []rbacv1.Subject{group("system:serviceaccounts:other")}, "", false},
		{"every authenticated user", []rbacv1.Subject{group("system:authenticated")}, "", true},
		{"anonymous only", []rbacv1.Subject{group("system:unauthenticated")}, "", false},
		{"one of several", []rbacv1.Subject{user("alice"), sa("shop", "web")}, "shop", true},
		{"none", nil, "shop", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bindsServiceAccount(tt.subjects, tt.bindingNamespace, "shop", "web"); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// pullSecret is a dockerconfigjson Secret.
func pullSecret(name, config string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(config)},
	}
}

func TestPullSecretKeychain(t *testing.T) {
	t.Parallel()
	fakeClient := fake.NewClientset(
		pullSecret("hub", `{"auths":{"https://index.docker.io/v1/":{"username":"hub","password":"p-hub"}}}`),
		pullSecret("corp", `{"auths":{
			"registry.corp.example":{"auth":"Y29ycDpwLWNvcnA="},
			"registry.corp.example/team-a":{"username":"team-a","password":"p-team-a"},
			"*.cdn.example":{"username":"cdn","password":"p-cdn"},
			"http://127.0.0.1:5000":{"username":"local","password":"p-local"}}}`),
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "shop"},
			Type:       corev1.SecretTypeDockercfg,
			Data:       map[string][]byte{corev1.DockerConfigKey: []byte(`{"legacy.example":{"username":"old","password":"p-old"}}`)},
		},
	)
	kc, err := PullSecretKeychain(t.Context(), fakeClient, "shop", []string{"hub", "corp", "legacy"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ ref, wantUser string }{
		{"nginx", "hub"},
		{"docker.io/library/nginx", "hub"},
		{"registry.corp.example/team-b/app", "corp"},
		{"registry.corp.example/team-a/app", "team-a"},
		{"registry.corp.example/team-ab/app", "corp"},
		{"eu.cdn.example/x", "cdn"},
		{"a.eu.cdn.example/x", ""},
		{"127.0.0.1:5000/app", "local"},
		{"127.0.0.1:5001/app", ""},
		{"legacy.example/app", "old"},
		{"elsewhere.example/app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			repo, err := name.NewRepository(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			a, err := kc.Resolve(repo)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := authn.Authorization(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != tt.wantUser {
				t.Errorf("user %q, want %q", cfg.Username, tt.wantUser)
			}
		})
	}
}

func TestPullSecretKeychainErrorsHideValues(t *testing.T) {
	t.Parallel()
	const value = "s3cr3t-value-in-a-broken-secret"
	fakeClient := fake.NewClientset(
		pullSecret("broken", `{"auths":{"r.example":{"password":"`+value+`"`),
		pullSecret("garbage", value),
		pullSecret("good", `{"auths":{"r.example":{"username":"u","password":"p"}}}`),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: "shop"}, Data: map[string][]byte{"k": []byte(value)}},
	)
	kc, err := PullSecretKeychain(t.Context(), fakeClient, "shop", []string{"broken", "garbage", "opaque", "missing", "good"})
	if err == nil {
		t.Fatal("no error for broken, opaque and missing secrets")
	}
	for _, s := range []string{"broken", "garbage", "opaque", "missing"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name secret %s", err, s)
		}
	}
	if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), "s3cr") {
		t.Errorf("error %q quotes a secret value", err)
	}
	if kc == nil {
		t.Fatal("the good secret's keychain was dropped")
	}
	// Nothing usable at all: no keychain.
	if kc, err := PullSecretKeychain(t.Context(), fakeClient, "shop", []string{"missing"}); kc != nil || err == nil {
		t.Errorf("only a missing secret: keychain %v, err %v; want none and an error", kc, err)
	}
}

func TestSecretReferencesEveryKind(t *testing.T) {
	t.Parallel()
	opt := true
	ref := func(n string) *corev1.LocalObjectReference { return &corev1.LocalObjectReference{Name: n} }
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{
				{Name: "whole", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s-volume", Optional: &opt}}},
				{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s-projected"}, Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "crt"}}}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
				}}}},
				{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d", NodePublishSecretRef: ref("s-csi")}}},
				{Name: "rbd", VolumeSource: corev1.VolumeSource{RBD: &corev1.RBDVolumeSource{SecretRef: ref("s-rbd")}}},
				{Name: "plain", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{Prefix: "X_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s-envfrom"}}}}}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Env: []corev1.EnvVar{
				{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s-env"}, Key: "token"}}},
				{Name: "PLAIN", Value: "x"},
			}}}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "s-pull"}},
		},
	}
	want := []SecretReference{
		{Secret: "s-volume", Via: "volume", Volume: "whole", Optional: true},
		{Secret: "s-projected", Via: "projected", Volume: "proj", Keys: []SecretKey{{Key: "tls.crt", Path: "crt"}}},
		{Secret: "s-csi", Via: "csi", Volume: "csi"},
		{Secret: "s-rbd", Via: "rbd", Volume: "rbd"},
		{Secret: "s-envfrom", Via: "envFrom", Container: "init", Prefix: "X_"},
		{Secret: "s-env", Via: "env", Container: "debug", Env: "TOKEN", Keys: []SecretKey{{Key: "token"}}},
		{Secret: "s-pull", Via: "imagePullSecrets"},
	}
	if diff := cmp.Diff(want, secretReferences(pod).References); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cm"}, configMaps(pod)); diff != "" {
		t.Errorf("config maps (-want +got):\n%s", diff)
	}
}

func TestHashingReader(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 300_000) // 3 MB: several buffers
	sum := sha256.Sum256(data)
	tests := []struct {
		name    string
		max     int64
		wantErr bool
	}{
		{"exact size", int64(len(data)), false},
		{"no bound", -1, false},
		{"more than the descriptor says", int64(len(data)) - 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var progress bytes.Buffer
			h := &hashingReader{r: bytes.NewReader(data), h: sha256.New(), max: tt.max, progress: &progress}
			var out bytes.Buffer
			_, err := io.Copy(&out, h)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) || !bytes.Equal(h.h.Sum(nil), sum[:]) || h.n != int64(len(data)) || progress.Len() != len(data) {
				t.Errorf("copied %d bytes, counted %d, progress %d; hash ok %v", out.Len(), h.n, progress.Len(), bytes.Equal(h.h.Sum(nil), sum[:]))
			}
		})
	}
}

// memSink is an in-memory evidence.Sink for this package's own tests.
type memSink struct {
	mu      sync.Mutex
	files   map[string][]byte
	sources map[string]evidence.Source
	custody []evidence.Entry
}

func (s *memSink) Put(name string, r io.Reader, src evidence.Source) (evidence.File, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return evidence.File{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files, s.sources = map[string][]byte{}, map[string]evidence.Source{}
	}
	if _, ok := s.files[name]; ok {
		return evidence.File{}, fmt.Errorf("%s exists", name)
	}
	s.files[name], s.sources[name] = b, src
	sum := sha256.Sum256(b)
	return evidence.File{Path: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), Source: src}, nil
}

func (s *memSink) Custody(e evidence.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.custody = append(s.custody, e)
	return nil
}

// TestCheckpoint drives the checkpoint part against a fake API server
// that answers the node proxy as a kubelet with checkpointing would: the
// path the kubelet reports is recorded, marked sensitive, in a file and
// in custody. kwok cannot checkpoint, so this path has no real peer in
// these tests.
func TestCheckpoint(t *testing.T) {
	t.Parallel()
	const archive = "/var/lib/kubelet/checkpoints/checkpoint-web_shop-app-2026-01-02T03:04:05Z.tar"
	tests := []struct {
		name      string
		status    int
		body      string
		wantFile  bool
		wantError bool
		wantNote  string
	}{
		{"kubelet checkpoints", http.StatusOK, `{"items":["` + archive + `"]}`, true, false, ""},
		{"feature off", http.StatusNotFound, "404 page not found", false, false, "cannot checkpoint container app: HTTP 404"},
		{"runtime cannot", http.StatusInternalServerError, "checkpoint/restore support not available in runtime", false, false, "checkpoint/restore support not available"},
		{"forbidden", http.StatusForbidden, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`, false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath, gotMethod string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotMethod = r.URL.Path, r.Method
				w.Header().Set("Audit-Id", "audit-checkpoint")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			cfg := &rest.Config{Host: srv.URL}
			cfg.Wrap(kube.AuditIDTransport)
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sink := &memSink{}
			o, _ := Options{Sink: sink}.withDefaults()
			r := newRun(client, o, "shop", "web")
			r.pod = &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "uid-1"},
				Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app"}, {Name: "stopped"}}},
				Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
					{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
					{Name: "stopped", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}},
				}},
			}
			r.checkpoints(t.Context())

			if want := "/api/v1/nodes/n1/proxy/checkpoint/shop/web/app"; gotPath != want || gotMethod != http.MethodPost {
				t.Errorf("%s %s, want POST %s (and nothing for the stopped container)", gotMethod, gotPath, want)
			}
			b, ok := sink.files["checkpoint/app.json"]
			if ok != tt.wantFile {
				t.Fatalf("checkpoint/app.json written: %v, want %v (notes %v)", ok, tt.wantFile, r.res.Notes)
			}
			if (len(r.errs) > 0) != tt.wantError {
				t.Errorf("errors %v, want some: %v", r.errs, tt.wantError)
			}
			if tt.wantNote != "" && (len(r.res.Notes) != 1 || !strings.Contains(r.res.Notes[0], tt.wantNote)) {
				t.Errorf("notes %q, want one containing %q", r.res.Notes, tt.wantNote)
			}
			if !tt.wantFile {
				return
			}
			var cp Checkpoint
			if err := json.Unmarshal(b, &cp); err != nil {
				t.Fatal(err)
			}
			want := Checkpoint{APIVersion: "kir.dev/v1alpha1", Kind: "Checkpoint", Node: "n1", Namespace: "shop", Pod: "web", UID: "uid-1", Container: "app", Paths: []string{archive}, Sensitive: true}
			if diff := cmp.Diff(want, cp); diff != "" {
				t.Errorf("checkpoint/app.json (-want +got):\n%s", diff)
			}
			if src := sink.sources["checkpoint/app.json"]; !src.Sensitive || src.Kind != "checkpoint" || src.AuditID != "audit-checkpoint" || src.Container != "app" {
				t.Errorf("source %+v: want a sensitive checkpoint of app with its Audit-Id", src)
			}
			if len(sink.custody) != 1 || sink.custody[0].Action != "collect" {
				t.Errorf("custody %+v, want one collect entry", sink.custody)
			}
			if diff := cmp.Diff([]Checkpoint{want}, r.res.Checkpoints); diff != "" {
				t.Errorf("Result.Checkpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPodWithFakeClientset runs the whole collection over the fake
// clientset, which has no REST client: pod.json falls back to the typed
// object, the checkpoint to a note, and nothing panics.
func TestPodWithFakeClientset(t *testing.T) {
	t.Parallel()
	ctrl := true
	fakeClient := fake.NewClientset(
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "pod-uid", Labels: map[string]string{"app": "web"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs-uid", Controller: &ctrl}}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
				{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}},
		},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
	)
	sink := &memSink{}
	res, err := Pod(t.Context(), fakeClient, "shop", "web-1", Options{Sink: sink, Checkpoint: true, Images: true})
	if err != nil {
		t.Fatalf("%v\nnotes: %q", err, res.Notes)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(sink.files["pod.json"], &pod); err != nil || pod.Kind != "Pod" || pod.UID != "pod-uid" {
		t.Errorf("pod.json: %v, %+v", err, pod.TypeMeta)
	}
	for _, f := range []string{"logs/app.log", "manifests/node/n1.json", "manifests/secret-references.json", "events/pod.json"} {
		if _, ok := sink.files[f]; !ok {
			t.Errorf("missing %s", f)
		}
	}
	for _, want := range []string{
		"cannot reach the node proxy",
		"ReplicaSet/shop/web not found",
		"ServiceAccount/shop/default not found",
		"container app reports no image ID",
	} {
		if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, want) }) {
			t.Errorf("no note contains %q: %q", want, res.Notes)
		}
	}
}

// TestHeadTail writes streams in chunks of every awkward size and checks
// the head, the tail (across the ring's wrap), the count, the hash and
// that no buffer grew past its half of the limit.
func TestHeadTail(t *testing.T) {
	t.Parallel()
	stream := make([]byte, 1000)
	for i := range stream {
		stream[i] = byte('a' + i%26)
	}
	sum := sha256.Sum256(stream)
	for _, limit := range []int64{1, 2, 7, 100, 999, 1000, 1001, 5000} {
		for _, chunk := range []int{1, 3, 50, 499, 1000} {
			ht := newHeadTail(limit)
			for p := stream; len(p) > 0; p = p[min(chunk, len(p)):] {
				if _, err := ht.Write(p[:min(chunk, len(p))]); err != nil {
					t.Fatal(err)
				}
			}
			head, tail := min(int(limit-limit/2), len(stream)), min(int(limit/2), len(stream)-int(limit-limit/2))
			tail = max(tail, 0)
			got, _ := io.ReadAll(ht.tail())
			if string(ht.head) != string(stream[:head]) || string(got) != string(stream[len(stream)-tail:]) ||
				ht.n != int64(len(stream)) || !bytes.Equal(ht.h.Sum(nil), sum[:]) || ht.skipped() != int64(len(stream)-head-tail) {
				t.Errorf("limit %d, chunks of %d: head %q, tail %q, %d bytes, %d skipped; want the first %d and the last %d of %d",
					limit, chunk, ht.head, got, ht.n, ht.skipped(), head, tail, len(stream))
			}
			if cap(ht.head) > int(limit-limit/2) || cap(ht.ring) > int(limit/2) {
				t.Errorf("limit %d, chunks of %d: buffers of %d and %d bytes", limit, chunk, cap(ht.head), cap(ht.ring))
			}
		}
	}
}
