package nodetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/agent"
	"kir.dev/kir/internal/kubetest"
)

// The isolation tests play the attacker's session: a client pod holds a
// TCP session to the server pod (inbound to it) and the server holds one
// to a third pod (outbound, like a C2 channel), one message a second each
// way. `kir contain pod server` must end both. They run one at a time: an
// agent started by one would act on another's pods.

// talk is the program at each end of a session: it sends "<tag> N" once a
// second and logs each line it receives as "<who> got: <line>" (on
// stderr, the container's log).
func talk(tag, who string) string {
	return fmt.Sprintf(`sh -c "(i=0; while true; do i=\$((i+1)); echo %s \$i; sleep 1; done) & while read l; do echo \"%s got: \$l\" >&2; done"`, tag, who)
}

// probeLoop tries a new connection to addr every half second and logs
// "<tag> ok" or "<tag> fail".
func probeLoop(tag, addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf(`while true; do if echo p | nc -w 1 %s %s >/dev/null 2>&1; then echo "%s ok"; else echo "%s fail"; fi; sleep 0.5; done`, host, port, tag, tag)
}

// marker is a line the server writes first: the bundle's logs must hold it.
const marker = "kir-test-marker: the server started"

// sessions are the pods of one test.
type sessions struct {
	c             *kubetest.Cluster
	ns            string
	third, server string // their IPs
}

// startSessions starts third, server and client and waits until every
// direction of both sessions carries messages.
func startSessions(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, ns string) *sessions {
	t.Helper()
	s := &sessions{c: c, ns: ns}
	s.third = startPod(t, c, node, ns, "third", fmt.Sprintf(`nc -ll -p 9091 -e echo hi &
nc -ll -p 9090 -e %s &
while true; do sleep 1; done`, talk("t2s", "third"))).Status.PodIP
	s.server = startPod(t, c, node, ns, "server", fmt.Sprintf(`echo %q
nc -ll -p 8081 -e echo hi &
nc -ll -p 8080 -e %s &
(while true; do nc %s 9090 -e %s; sleep 0.5; done) &
%s &
i=0; while true; do i=$((i+1)); echo "alive $i"; sleep 1; done`, marker, talk("s2c", "server-from-client"), s.third, talk("c2", "server-from-third"), probeLoop("out", s.third+":9091"))).Status.PodIP
	startPod(t, c, node, ns, "client", fmt.Sprintf(`(while true; do nc %s 8080 -e %s; sleep 0.5; done) &
%s &
%s`, s.server, talk("c2s", "client"), probeLoop("in", s.server+":8081"), probeLoop("third", s.third+":9091")))
	for _, d := range s.directions() {
		waitCount(t, c, ns, d.pod, d.prefix, 2)
	}
	return s
}

// direction is one way of one session: the lines its receiver logs.
type direction struct{ pod, prefix string }

func (s *sessions) directions() []direction {
	return []direction{
		{"client", "client got: s2c"},             // server → client
		{"server", "server-from-client got: c2s"}, // client → server
		{"server", "server-from-third got: t2s"},  // third → server
		{"third", "third got: c2"},                // server → third
	}
}

// counts are the messages received so far, per direction.
func (s *sessions) counts(t *testing.T) []int {
	t.Helper()
	var out []int
	for _, d := range s.directions() {
		out = append(out, count(t, s.c, s.ns, d.pod, d.prefix))
	}
	return out
}

func count(t *testing.T, c *kubetest.Cluster, ns, pod, prefix string) int {
	t.Helper()
	log, err := podLogs(t.Context(), c, ns, pod, -1)
	if err != nil {
		t.Fatalf("log of %s/%s: %v", ns, pod, err)
	}
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func waitCount(t *testing.T, c *kubetest.Cluster, ns, pod, prefix string, atLeast int) {
	t.Helper()
	err := kubetest.Eventually(t.Context(), waitTimeout, func(context.Context) (bool, error) {
		return count(t, c, ns, pod, prefix) >= atLeast, nil
	})
	if err != nil {
		log, _ := podLogs(context.Background(), c, ns, pod, 40)
		t.Fatalf("%s/%s never logged %d lines %q: %v; its log ends:\n%s", ns, pod, atLeast, prefix, err, log)
	}
}

// waitLast waits until the pod's last three lines starting with tag all
// end with result ("ok" or "fail").
func waitLast(t *testing.T, c *kubetest.Cluster, ns, pod, tag, result string) {
	t.Helper()
	var last []string
	err := kubetest.Eventually(t.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		log, err := podLogs(ctx, c, ns, pod, 200)
		if err != nil {
			return false, nil
		}
		last = nil
		for _, l := range strings.Split(log, "\n") {
			if strings.HasPrefix(l, tag+" ") {
				last = append(last, l)
			}
		}
		if len(last) < 3 {
			return false, nil
		}
		last = last[len(last)-3:]
		for _, l := range last {
			if l != tag+" "+result {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s/%s: the last three %q attempts never all ended %q: %v (last: %q)", ns, pod, tag, result, err, last)
	}
}

// flowing checks whether the sessions still carry messages over d: it
// returns the directions that received none.
func (s *sessions) silentOver(t *testing.T, d time.Duration) []string {
	t.Helper()
	before := s.counts(t)
	time.Sleep(d)
	after := s.counts(t)
	var silent []string
	for i, dir := range s.directions() {
		if after[i] == before[i] {
			silent = append(silent, dir.prefix)
		}
	}
	return silent
}

// startAgent runs `kir node agent` for the real node, reporting in kirNS,
// with the RBAC deploy/ gives it (agentKubeconfig), and waits for its
// first heartbeat. It serves captures as the DaemonSet's would: its pod
// is a hostNetwork pod on the node (agentPod), so the API server's
// pods/proxy reaches the agent's port on the node's address. It runs on
// the host, so the host's root is / (this machine's PID 1 refuses even
// root /proc/1/root, the DaemonSet's way).
func startAgent(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, kirNS string) *kubetest.KirProcess {
	t.Helper()
	pod := agentPod(t, c, node, kirNS)
	p := kubetest.Kir{Kubeconfig: agentKubeconfig(t, c, kirNS)}.Start(t, "node", "agent", "--node", node.Name, "--kir-namespace", kirNS,
		"--capture-dir", t.TempDir(), "--host-root", "/", "--listen", fmt.Sprintf(":%d", freePort(t)), "--pod", pod, "--pod-namespace", kirNS)
	err := kubetest.Eventually(t.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoordinationV1().Leases(kirNS).Get(ctx, agent.HeartbeatName(node.Name), metav1.GetOptions{})
		return err == nil && agent.Alive(l, time.Now()), nil
	})
	if err != nil {
		t.Fatalf("the node agent never renewed its heartbeat: %v", err)
	}
	return p
}

// report is what these tests read of kir's -o json report (docs/report.md).
type report struct {
	Run      string   `json:"run"`
	Status   string   `json:"status"`
	Warnings []string `json:"warnings"`
	Steps    []struct {
		Name              string          `json:"name"`
		Output            json.RawMessage `json:"output"`
		Started, Finished time.Time
	} `json:"steps"`
}

// exitNotEnforced is kir's documented exit code for a run the node did not
// enforce (the README's exit-code table).
const exitNotEnforced = 11

// contain runs kir contain pod server and returns its report.
func contain(t *testing.T, c *kubetest.Cluster, state, ns, kirNS string, extra ...string) (report, kubetest.Result) {
	t.Helper()
	args := append([]string{"contain", "pod", "server", "-n", ns, "--no-cordon", "--no-images", "--kir-namespace", kirNS, "-o", "json"}, extra...)
	r := kubetest.Kir{Kubeconfig: c.Kubeconfig, StateDir: state}.Run(t, args...)
	var rep report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("kir contain: exit %d, no JSON report (%v)\nstdout:\n%s\nstderr:\n%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return rep, r
}

// confirmation is the confirm step's record of the server pod.
func confirmation(t *testing.T, rep report) map[string]any {
	t.Helper()
	for _, s := range rep.Steps {
		if s.Name != "confirm" {
			continue
		}
		b := s.Output
		var out struct {
			Pods []map[string]any `json:"pods"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Pods) != 1 {
			t.Fatalf("confirm step output %s: want one pod (%v)", b, err)
		}
		return out.Pods[0]
	}
	t.Fatalf("the run has no confirm step: %+v", rep.Steps)
	return nil
}

// TestOpenSessionsSurviveLabelAndPolicy is the problem, reproduced on this
// node: with the quarantine label and policy alone (no node agent), new
// connections fail, but both sessions opened before keep flowing both
// ways. kir says so.
func TestOpenSessionsSurviveLabelAndPolicy(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	s := startSessions(t, c, node, ns)

	rep, r := contain(t, c, t.TempDir(), ns, kirNS)
	if r.Code != 0 {
		t.Fatalf("kir contain without an agent: exit %d, want 0\n%s", r.Code, r.Stderr)
	}
	if got := confirmation(t, rep)["state"]; got != "unconfirmed" || !strings.Contains(strings.Join(rep.Warnings, "\n"), "were NOT cut") {
		t.Errorf("without an agent: confirm state %v, warnings %q; want unconfirmed and a warning that sessions were not cut", got, rep.Warnings)
	}
	// Enforced: new connections in and out fail.
	waitLast(t, c, ns, "client", "in", "fail")
	waitLast(t, c, ns, "server", "out", "fail")
	// Yet the sessions opened before carry on, every direction.
	if silent := s.silentOver(t, 5*time.Second); len(silent) > 0 {
		t.Fatalf("without an agent, directions %v stopped: the reproduction expects every open session to survive the policy", silent)
	}
}

// TestContainCutsOpenSessions: with the node agent, within 5 s of kir
// contain returning neither session carries another byte; new
// connections in and out fail; the third pod still answers others; the
// server still runs; the run records when isolation was enforced and the
// sessions cut; the bundle holds the server's real log.
func TestContainCutsOpenSessions(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	s := startSessions(t, c, node, ns)

	state := t.TempDir()
	rep, r := contain(t, c, state, ns, kirNS)
	returned := time.Now()
	if r.Code != 0 {
		t.Fatalf("kir contain: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	conf := confirmation(t, rep)
	report, _ := conf["report"].(map[string]any)
	cut, _ := report["cut"].(map[string]any)
	if conf["state"] != agent.StateEnforced || report["enforcedAt"] == nil || cut == nil {
		t.Fatalf("confirmation %v: want enforced, with the time and the cut", conf)
	}
	// Two sessions: one accepted by the server, one it opened.
	if tcp, _ := cut["tcp"].(float64); tcp < 2 {
		t.Errorf("the agent cut %v TCP sockets, want at least the 2 sessions", cut["tcp"])
	}
	t.Logf("enforced %v ms after the agent saw the label; cut %v", report["enforcedAfterMs"], cut)

	time.Sleep(time.Until(returned.Add(5 * time.Second)))
	if silent := s.silentOver(t, 4*time.Second); len(silent) != len(s.directions()) {
		t.Errorf("5 s after kir contain returned, only %v are silent; every direction must be", silent)
	}
	waitLast(t, c, ns, "client", "in", "fail")
	waitLast(t, c, ns, "server", "out", "fail")
	waitLast(t, c, ns, "client", "third", "ok")
	alive := count(t, c, ns, "server", "alive ")
	waitCount(t, c, ns, "server", "alive ", alive+2) // kept for forensics, still running

	bundle := filepath.Join(state, "evidence", rep.Run)
	if !bundleHolds(t, bundle, "log", marker) {
		t.Errorf("no log of the bundle %s holds the server's line %q", rep.Run, marker)
	}
	// The evidence records the confirmation: the run's journal, sealed in.
	if !bundleHolds(t, bundle, "journal", `"enforcedAfterMs"`) {
		t.Errorf("the bundle %s does not record when the isolation was enforced", rep.Run)
	}
}

// bundleHolds reports whether a file under dir whose path contains in
// holds s.
func bundleHolds(t *testing.T, dir, in, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), s) && strings.Contains(path, in) {
			found = true
		}
		return err
	})
	if err != nil {
		t.Fatalf("reading the bundle: %v", err)
	}
	return found
}

// TestNotEnforcedWithoutEnforcer: with kube-router stopped, nothing
// programs the new quarantine policy: the agent's probe still gets
// through, and kir contain ends not-enforced, with its own exit code.
func TestNotEnforcedWithoutEnforcer(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	startPod(t, c, node, ns, "server", `while true; do sleep 1; done`)
	if err := node.StopEnforcer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.StartEnforcer(context.Background()); err != nil {
			t.Errorf("restarting the enforcer: %v", err)
		}
	})
	rep, r := contain(t, c, t.TempDir(), ns, kirNS, "--enforce-timeout", "4s")
	if r.Code != exitNotEnforced || rep.Status != "not-enforced" {
		t.Fatalf("kir contain with no enforcer: exit %d, status %q; want %d, not-enforced\nstdout:\n%s\nstderr:\n%s", r.Code, rep.Status, exitNotEnforced, r.Stdout, r.Stderr)
	}
	if conf := confirmation(t, rep); conf["state"] != agent.StateNotEnforced {
		t.Errorf("confirmation %v, want not-enforced", conf)
	}
	// kir doctor's probe sees the same, with the same exit code.
	d, r := doctor(t, c, node, kirNS)
	if canary, _ := d["canary"].(map[string]any); r.Code != exitNotEnforced || canary["state"] != agent.StateNotEnforced {
		t.Errorf("kir doctor --probe-node with no enforcer: exit %d, canary %v; want %d, not-enforced\nthe host:\n%s", r.Code, canary, exitNotEnforced, hostState())
	}
	// The remedy kir prints: fix the network plugin, run the same command
	// again. The agent answers the new run.
	if err := node.StartEnforcer(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, r = contain(t, c, t.TempDir(), ns, kirNS, "--enforce-timeout", "20s")
	if conf := confirmation(t, rep); r.Code != 0 || conf["state"] != agent.StateEnforced {
		t.Errorf("kir contain again with the enforcer back: exit %d, confirmation %v; want 0, enforced\n%s", r.Code, conf, r.Stderr)
	}
}

// hostState is what may block a pod's packets on the host, for failure
// messages.
func hostState() string {
	var b strings.Builder
	for _, cmd := range [][]string{{"iptables-save"}, {"ipset", "list", "-n"}, {"ip", "addr", "show", "kir0"}, {"ip", "neigh"}, {"pgrep", "-a", "kube-router"}} {
		out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "$ %s (%v)\n%s\n", strings.Join(cmd, " "), err, out)
	}
	return b.String()
}

// TestReleaseRestoresConnections: kir release pod lifts the isolation:
// new connections in and out work again, and the agent does nothing to
// the released pod (a session opened after the release keeps flowing).
func TestReleaseRestoresConnections(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	s := startSessions(t, c, node, ns)
	if _, r := contain(t, c, t.TempDir(), ns, kirNS); r.Code != 0 {
		t.Fatalf("kir contain: exit %d\n%s", r.Code, r.Stderr)
	}
	waitLast(t, c, ns, "client", "in", "fail")

	kubetest.Kir{Kubeconfig: c.Kubeconfig}.MustRun(t, "release", "pod", "server", "-n", ns)
	// The agent lets go of the released pod: its report goes, nothing else.
	server, err := c.Client.CoreV1().Pods(ns).Get(t.Context(), "server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = kubetest.Eventually(t.Context(), waitTimeout, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoordinationV1().Leases(kirNS).Get(ctx, agent.ReportName(string(server.UID)), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the agent's report of the released pod stays: %v", err)
	}
	waitLast(t, c, ns, "client", "in", "ok")
	waitLast(t, c, ns, "server", "out", "ok")
	// The client's and the server's loops reconnect; the agent leaves the
	// new sessions alone.
	for _, d := range s.directions() {
		waitCount(t, c, ns, d.pod, d.prefix, count(t, c, ns, d.pod, d.prefix)+2)
	}
	if silent := s.silentOver(t, 4*time.Second); len(silent) > 0 {
		t.Errorf("after release, directions %v went silent: the agent acted on a released pod", silent)
	}
}

// doctor runs kir doctor's enforcement probe on the real node.
func doctor(t *testing.T, c *kubetest.Cluster, node *kubetest.Node, kirNS string) (map[string]any, kubetest.Result) {
	t.Helper()
	r := kubetest.Kir{Kubeconfig: c.Kubeconfig}.Run(t, "doctor", "-o", "json", "--kir-namespace", kirNS,
		"--probe-node", node.Name, "--canary-image", node.PauseImage, "--enforce-timeout", "5s")
	var d map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
		t.Fatalf("kir doctor: exit %d, no JSON (%v)\nstdout:\n%s\nstderr:\n%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return d, r
}

// TestDoctorProbesEnforcement: kir doctor says the real node's agent
// answers and where it serves its captures, and its canary probe sees the
// node enforce an isolation.
func TestDoctorProbesEnforcement(t *testing.T) {
	c, node := realNode(t)
	kirNS := namespace(t, c)
	startAgent(t, c, node, kirNS)
	d, r := doctor(t, c, node, kirNS)
	if r.Code != 0 {
		t.Fatalf("kir doctor --probe-node: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	canary, _ := d["canary"].(map[string]any)
	if canary["state"] != agent.StateEnforced {
		t.Errorf("canary %v, want enforced", canary)
	}
	answers := false
	nodes, _ := d["nodes"].([]any)
	for _, n := range nodes {
		n, _ := n.(map[string]any)
		answers = answers || (n["node"] == node.Name && n["agent"] == "answers" && strings.HasPrefix(fmt.Sprint(n["captures"]), kirNS+"/kir-node-agent:"))
	}
	if !answers {
		t.Errorf("doctor's nodes %v: want %s's agent answering, serving captures from its pod", nodes, node.Name)
	}
}

// TestNoCutKeepsSessions: --no-cut, for a responder who wants to watch
// the attacker: the agent confirms the isolation, records that it kept
// the sessions, and they carry on (the cut, not the policy, is what ends
// them in TestContainCutsOpenSessions).
func TestNoCutKeepsSessions(t *testing.T) {
	c, node := realNode(t)
	ns, kirNS := namespace(t, c), namespace(t, c)
	startAgent(t, c, node, kirNS)
	s := startSessions(t, c, node, ns)
	rep, r := contain(t, c, t.TempDir(), ns, kirNS, "--no-cut")
	if r.Code != 0 {
		t.Fatalf("kir contain --no-cut: exit %d\n%s", r.Code, r.Stderr)
	}
	conf := confirmation(t, rep)
	report, _ := conf["report"].(map[string]any)
	cut, _ := report["cut"].(map[string]any)
	if conf["state"] != agent.StateEnforced || cut["kept"] != true {
		t.Fatalf("confirmation %v: want enforced, sessions kept", conf)
	}
	if kept, _ := cut["remaining"].(float64); kept < 2 {
		t.Errorf("the agent counted %v sessions kept open, want the 2", cut["remaining"])
	}
	waitLast(t, c, ns, "client", "in", "fail")
	if silent := s.silentOver(t, 4*time.Second); len(silent) > 0 {
		t.Errorf("with --no-cut, directions %v stopped", silent)
	}
	// Done watching: contain again, without --no-cut, and they end.
	rep, r = contain(t, c, t.TempDir(), ns, kirNS)
	conf = confirmation(t, rep)
	report, _ = conf["report"].(map[string]any)
	cut, _ = report["cut"].(map[string]any)
	if r.Code != 0 || conf["state"] != agent.StateEnforced || cut["kept"] == true {
		t.Fatalf("kir contain again without --no-cut: exit %d, confirmation %v; want enforced and cut", r.Code, conf)
	}
	if silent := s.silentOver(t, 4*time.Second); len(silent) != len(s.directions()) {
		t.Errorf("after containing again without --no-cut, only %v are silent", silent)
	}
}
