package nodetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/internal/kubetest"
)

// plantedEnv is a secret in the attacker's container's environment: the
// agent never reads /proc/PID/environ, so it is nowhere in the bundle.
const plantedEnv = "kir-planted-env-3f9c1e0b7d"

// implantScript plays the attacker: it drops a copy of busybox as
// /tmp/nc, starts it holding a connection to the peer, deletes it from
// disk, and writes a file under /tmp.
func implantScript(peer string) string {
	return fmt.Sprintf(`busybox cp -p /bin/busybox /tmp/nc
echo "dropped by the attacker" > /tmp/dropped.txt
(while true; do sleep 1; done | /tmp/nc %s 8080 >/dev/null) &
sleep 1
rm /tmp/nc
echo implant-ready
while true; do sleep 1; done`, peer)
}

// TestContainCapturesVolatileEvidence is the acceptance: after
// kir contain pod, the bundle holds the process table with the implant
// (deleted from disk: its bytes copied, its hash), its connection to the
// peer as it was before the cut, and the dropped file in the container's
// layer; the signed bundle verifies, and fails to once any of those files
// changes. No value of the container's environment is in the bundle.
func TestContainCapturesVolatileEvidence(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	peer := startImplant(t, c, node, ns)

	state, keys := t.TempDir(), t.TempDir()
	if r := (kubetest.Kir{}).Run(t, "evidence", "keygen", "--out", keys); r.Code != 0 {
		t.Fatalf("kir evidence keygen: exit %d\n%s", r.Code, r.Stderr)
	}
	rep, r := contain(t, c, state, ns, kirNS, "--key", filepath.Join(keys, "kir.key"))
	if r.Code != 0 {
		t.Fatalf("kir contain: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	bundle := filepath.Join(state, "evidence", rep.Run)
	dir := filepath.Join(bundle, "pods", ns, "server", "node")
	for _, s := range rep.Steps {
		if s.Name == "nodeCapture" {
			var out bytes.Buffer
			_ = json.Compact(&out, s.Output)
			t.Logf("nodeCapture took %v: %s", s.Finished.Sub(s.Started), out.String())
		}
	}

	implant := findImplant(t, dir)
	busybox, err := os.ReadFile("/bin/busybox") // the image's busybox is the host's
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(busybox)
	if want := hex.EncodeToString(sum[:]); implant.ExeSHA256 != want {
		t.Errorf("the implant's exe hash %s, want busybox's %s", implant.ExeSHA256, want)
	}
	exe, err := os.ReadFile(filepath.Join(dir, "exe", implant.ExeSHA256))
	if err != nil || !slices.Equal(exe, busybox) {
		t.Errorf("the bundle's copy of the deleted implant: %d bytes (%v), want busybox's %d", len(exe), err, len(busybox))
	}
	checkPeerConnection(t, dir, implant.PID, peer.Status.PodIP+":8080")
	if got := layerFile(t, filepath.Join(dir, "layer", "main.tar"), "tmp/dropped.txt"); got != "dropped by the attacker\n" {
		t.Errorf("tmp/dropped.txt in the layer tar: %q", got)
	}
	if files := filesHolding(t, bundle, plantedEnv); len(files) > 0 {
		t.Errorf("the bundle's %v hold the container's secret environment value %q", files, plantedEnv)
	}
	if rep := htmlReport(t, bundle); !strings.Contains(rep, peer.Status.PodIP+":8080") || !strings.Contains(rep, "tmp/dropped.txt") || !strings.Contains(rep, "/tmp/nc") {
		t.Errorf("report.html does not show the implant, its peer and the dropped file")
	}

	pub := filepath.Join(keys, "kir.pub")
	if r := (kubetest.Kir{}).Run(t, "evidence", "verify", bundle, "--key", pub); r.Code != 0 {
		t.Fatalf("kir evidence verify --key: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, f := range []string{"processes.json", "sockets.json", "exe/" + implant.ExeSHA256, "layer/main.tar"} {
		t.Run("tampered "+f, func(t *testing.T) {
			copyDir := filepath.Join(t.TempDir(), "bundle")
			if err := exec.Command("cp", "-a", bundle, copyDir).Run(); err != nil {
				t.Fatal(err)
			}
			tamper(t, filepath.Join(copyDir, "pods", ns, "server", "node", filepath.FromSlash(f)))
			if r := (kubetest.Kir{}).Run(t, "evidence", "verify", copyDir, "--key", pub); r.Code == 0 {
				t.Errorf("kir evidence verify passed a bundle whose %s changed", f)
			}
		})
	}
}

// filesHolding lists the files under dir that hold s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startImplant starts the peer and the attacker's server (implantScript),
// with a Secret's value in its environment, and returns the peer's IP.
func startImplant(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, ns string) *corev1.Pod {
	t.Helper()
	peer := startPod(t, c, node, ns, "peer", `nc -ll -p 8080 -e cat`)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api"}, StringData: map[string]string{"token": plantedEnv}}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startPodEnv(t, c, node, ns, "server", implantScript(peer.Status.PodIP), corev1.EnvVar{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "api"}, Key: "token"},
	}})
	waitLog(t, c, ns, "server", "implant-ready")
	return peer
}

// startPodEnv is startPod with environment variables.
func startPodEnv(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, ns, name, script string, env ...corev1.EnvVar) *corev1.Pod {
	t.Helper()
	return startPodWith(t, c, node, ns, name, script, func(p *corev1.Pod) { p.Spec.Containers[0].Env = env })
}

// capturedProcess is what the test reads of processes.json.
type capturedProcess struct {
	PID        int      `json:"pid"`
	Exe        string   `json:"exe"`
	ExeDeleted bool     `json:"exeDeleted"`
	ExeSHA256  string   `json:"exeSHA256"`
	Cmdline    []string `json:"cmdline"`
	Container  string   `json:"container"`
}

// findImplant finds the implant in the captured process table.
func findImplant(t *testing.T, dir string) capturedProcess {
	t.Helper()
	var f struct {
		Processes []capturedProcess `json:"processes"`
	}
	readJSON(t, filepath.Join(dir, "processes.json"), &f)
	for _, p := range f.Processes {
		if strings.HasPrefix(p.Exe, "/tmp/nc") && p.ExeDeleted && p.Container == "main" {
			return p
		}
	}
	t.Fatalf("no process of container main runs the deleted /tmp/nc in %+v", f.Processes)
	return capturedProcess{}
}

// checkPeerConnection: the implant's connection to peer, established, as
// the capture saw it before the cut.
func checkPeerConnection(t *testing.T, dir string, pid int, peer string) {
	t.Helper()
	var f struct {
		Sockets []struct {
			State  string `json:"state"`
			Remote string `json:"remote"`
			PIDs   []int  `json:"pids"`
		} `json:"sockets"`
	}
	readJSON(t, filepath.Join(dir, "sockets.json"), &f)
	for _, s := range f.Sockets {
		if s.Remote == peer && s.State == "ESTABLISHED" && slices.Contains(s.PIDs, pid) {
			return
		}
	}
	t.Errorf("no established socket of PID %d to %s in %+v", pid, peer, f.Sockets)
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// layerFile reads name from a layer tar.
func layerFile(t *testing.T, file, name string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s holds no %s; it holds %v", file, name, names)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		names = append(names, h.Name)
	}
}

// htmlReport is the bundle's report.html.
func htmlReport(t *testing.T, bundle string) string {
	t.Helper()
	var found string
	_ = filepath.WalkDir(bundle, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "report.html" {
			b, _ := os.ReadFile(p)
			found = string(b)
		}
		return nil
	})
	return found
}

// tamper changes one byte of a file of a sealed (read-only) bundle.
func tamper(t *testing.T, file string) {
	t.Helper()
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil || len(b) == 0 {
		t.Fatalf("%s: %v (%d bytes)", file, err, len(b))
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// longLogLatest is the last line of the long log.
const longLogLatest = "the attacker's latest line"

// TestContainKeepsLatestOfLongLog: a container that wrote ~30 MiB of logs
// on the real node. The bundle keeps its first and last parts within the
// budget (collect's 10 MiB default), ends with the latest line, and
// records the length and SHA-256 of the whole stream the kubelet sent,
// which the test reads again through the API server.
func TestContainKeepsLatestOfLongLog(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	pad := strings.Repeat("x", 100)
	startPod(t, c, node, ns, "server", fmt.Sprintf(`seq 1 290000 | sed 's/$/ %s/'
echo %q
while true; do sleep 1; done`, pad, longLogLatest))
	err := kubetest.Eventually(t.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		last, err := podLogs(ctx, c, ns, "server", 1)
		return err == nil && strings.Contains(last, longLogLatest), nil
	})
	if err != nil {
		t.Fatalf("the server never logged its latest line: %v", err)
	}

	state := t.TempDir()
	rep, r := contain(t, c, state, ns, kirNS)
	if r.Code != 0 {
		t.Fatalf("kir contain: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	stream, err := c.Client.CoreV1().Pods(ns).GetLogs("server", &corev1.PodLogOptions{Timestamps: true}).DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(stream) < 30<<20 {
		t.Fatalf("the server's log is %d bytes, want at least 30 MiB", len(stream))
	}
	logs := filepath.Join(state, "evidence", rep.Run, "pods", ns, "server", "logs")
	kept, err := os.ReadFile(filepath.Join(logs, "main.log"))
	if err != nil {
		t.Fatal(err)
	}
	var cut struct {
		Bytes                int64  `json:"bytes"`
		SHA256               string `json:"sha256"`
		Complete             bool   `json:"complete"`
		HeadBytes, TailBytes int64
		LimitBytes           int64  `json:"limitBytes"`
		Marker               string `json:"marker"`
	}
	readJSON(t, filepath.Join(logs, "main.log.cut.json"), &cut)
	sum := sha256.Sum256(stream)
	if cut.Bytes != int64(len(stream)) || cut.SHA256 != hex.EncodeToString(sum[:]) || !cut.Complete {
		t.Errorf("main.log.cut.json says %d bytes hashing %s (complete %v); the stream is %d bytes hashing %x", cut.Bytes, cut.SHA256, cut.Complete, len(stream), sum)
	}
	if int64(len(kept)) > cut.LimitBytes+int64(len(cut.Marker))+2 || cut.Marker == "" || !strings.Contains(string(kept), cut.Marker) {
		t.Errorf("main.log is %d bytes for a limit of %d, marker %q", len(kept), cut.LimitBytes, cut.Marker)
	}
	if !strings.HasPrefix(string(stream), string(kept[:1<<20])) {
		t.Error("main.log does not start with the stream's first bytes")
	}
	if !strings.HasSuffix(string(kept), " "+longLogLatest+"\n") || !strings.HasSuffix(string(stream), string(kept[len(kept)-1<<20:])) {
		t.Errorf("main.log does not end with the stream's last bytes and the latest line %q", longLogLatest)
	}
}

// replayRouting routes the test's Critical alert to contain-pod, on the
// alert's pod, leaving the real node schedulable and pulling no image.
const replayRouting = `apiVersion: kir.dev/v1alpha1
kind: Routing
rules:
  - name: contain
    match:
      priority: ">=Critical"
    playbook: contain-pod
    params:
      namespace: ${k8s.ns.name}
      name: ${k8s.pod.name}
      cordon: false
      images: false
`

// TestAlertRunReportInChromium: a Falco alert about the attacker's pod
// runs contain-pod (kir falco replay: kir serve's routing and playbooks);
// the bundle's report, rendered by headless Chromium, shows the alert, the
// process tree with the implant deleted from disk, its connection to the
// peer and the file it dropped.
func TestAlertRunReportInChromium(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	peer := startImplant(t, c, node, ns)

	dir := t.TempDir()
	raw, err := os.ReadFile("../../testdata/falco/sidekick-drop-execute.json")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	fields := a["output_fields"].(map[string]any)
	fields["k8s.ns.name"], fields["k8s.pod.name"] = ns, "server"
	raw, _ = json.Marshal(a)
	alertFile, routing := filepath.Join(dir, "alert.json"), filepath.Join(dir, "routing.yaml")
	if err := errors.Join(os.WriteFile(alertFile, raw, 0o600), os.WriteFile(routing, []byte(replayRouting), 0o600)); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig, StateDir: state}
	if r := kir.Run(t, "falco", "replay", alertFile, "--config", routing, "--kir-namespace", kirNS); r.Code != 0 {
		t.Fatalf("kir falco replay: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	reports, _ := filepath.Glob(filepath.Join(state, "evidence", "*", "report.html"))
	if len(reports) != 1 {
		t.Fatalf("want one sealed bundle with a report.html under %s, found %v", state, reports)
	}
	dom := string(kubetest.RenderDOM(t, reports[0]))
	for what, want := range map[string]string{
		"the alert's rule":                "Drop and execute new binary in container",
		"the implant":                     "/tmp/nc (deleted)",
		"the deleted executable, flagged": "DELETED FROM DISK",
		"the peer":                        peer.Status.PodIP + ":8080",
		"the dropped file":                "tmp/dropped.txt",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered report does not show %s (%q)", what, want)
		}
	}
}

// TestFreezeThenReleaseThaws: kir contain pod --freeze has the agent
// freeze the pod's container once its processes are on record: its loop
// stops logging; kir release thaws it and the loop goes on. The capture
// is taken all the same (its processes, from before the freeze).
func TestFreezeThenReleaseThaws(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	startPod(t, c, node, ns, "server", `i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done`)
	waitCount(t, c, ns, "server", "tick ", 3)

	state := t.TempDir()
	rep, r := contain(t, c, state, ns, kirNS, "--freeze")
	if r.Code != 0 {
		t.Fatalf("kir contain --freeze: exit %d\n%s", r.Code, r.Stderr)
	}
	conf := confirmation(t, rep)
	frozen, _ := conf["report"].(map[string]any)["frozen"].(map[string]any)
	if names, _ := frozen["containers"].([]any); len(names) != 1 || names[0] != "main" {
		t.Fatalf("the agent's report says frozen %v, want container main", frozen)
	}
	time.Sleep(time.Second)
	before := count(t, c, ns, "server", "tick ")
	time.Sleep(2 * time.Second)
	if after := count(t, c, ns, "server", "tick "); after != before {
		t.Errorf("the frozen container logged %d ticks in 2 s", after-before)
	}
	if _, err := os.Stat(filepath.Join(state, "evidence", rep.Run, "pods", ns, "server", "node", "processes.json")); err != nil {
		t.Errorf("no capture of the frozen pod: %v", err)
	}

	kubetest.Kir{Kubeconfig: c.Kubeconfig}.MustRun(t, "release", "pod", "server", "-n", ns)
	waitCount(t, c, ns, "server", "tick ", before+5) // thawed: the loop goes on
}
