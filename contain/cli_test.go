package contain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
	"kir.dev/kir/evidence"
	"kir.dev/kir/playbooks"
)

// cliMu serialises in-process runs: urfave/cli v2 writes to its
// package-level help flag while parsing, so two apps in one process race.
// The kir binary runs one app per process.
var cliMu sync.Mutex

// kir runs the kir command line in-process against kubeconfig and returns
// its exit code, stdout and stderr.
func kir(t *testing.T, kubeconfig string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	argv := append(append([]string{"kir"}, args...), "--kubeconfig", kubeconfig)
	cliMu.Lock()
	defer cliMu.Unlock()
	code := cli.Run(t.Context(), argv, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIContainAndReleaseWithFlagsAfterNames(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	target := f.pods[0].Name
	before := snapshot(t, f, target)
	keys := t.TempDir()
	if err := evidence.Keygen(keys, evidence.AlgEd25519); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(keys, evidence.PrivateKeyFile)
	bundle := filepath.Join(t.TempDir(), "evidence")

	code, out, errOut := kir(t, cluster.Kubeconfig, "contain", "pod", target, "-n", f.ns, "--incident", "inc-cli", "-o", "json", "--key", key, "--out", bundle)
	if code != cli.ExitOK {
		t.Fatalf("contain exit %d, stderr %q", code, errOut)
	}
	var rep cli.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json is not a report: %v\n%s", err, out)
	}
	var actions []string
	for _, s := range rep.Steps {
		if s.Status == "succeeded" {
			actions = append(actions, s.Action)
		}
	}
	if rep.Status != "succeeded" || rep.Incident != "inc-cli" || strings.Join(actions, " ") != "collect.snapshot-pod contain.isolate-pod contain.cordon-node collect.pod collect.seal" {
		t.Errorf("report = status %q incident %q steps %+v", rep.Status, rep.Incident, rep.Steps)
	}
	if p := f.pod(t, target); p.Labels[action.LabelQuarantine] == "" {
		t.Fatal("pod not labelled after kir contain pod")
	}
	if n := f.getNode(t); !n.Spec.Unschedulable {
		t.Error("node not cordoned after kir contain pod")
	}

	code, out, errOut = kir(t, cluster.Kubeconfig, "release", "pod", target, "-n", f.ns, "--evidence", bundle, "--key", key)
	if code != cli.ExitOK {
		t.Fatalf("release exit %d, stderr %q", code, errOut)
	}
	// The release is in the containment's custody log, signed after the
	// seal, and the bundle still verifies.
	pub, err := evidence.LoadPublicKey(filepath.Join(keys, evidence.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := evidence.Verify(bundle, pub); err != nil || rep.Outcome() != evidence.Verified {
		t.Errorf("verify after release: %v %+v", err, rep)
	}
	sum, err := evidence.Show(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if last := sum.Custody[len(sum.Custody)-1]; last.Action != "release" || !last.PostSeal || !strings.Contains(fmt.Sprintf("%s", last.Detail), target) {
		t.Errorf("last custody entry %+v, want a post-seal release naming the pod", last)
	}
	if !strings.Contains(out, "released") {
		t.Errorf("release output does not say released:\n%s", out)
	}
	if got := snapshot(t, f, target); !equalState(before, got) {
		t.Errorf("state after CLI release differs: before %+v after %+v", before, got)
	}

	// Releasing again: nothing to do, says so, exits 0 (like rm -f).
	code, out, _ = kir(t, cluster.Kubeconfig, "release", "pod", target, "-n", f.ns)
	if code != cli.ExitOK || !strings.Contains(out, "not contained by kir") {
		t.Errorf("second release: exit %d, output %q", code, out)
	}
}

func equalState(a, b state) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestCLIMissingPodIsOneLineAndExit3(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	code, out, errOut := kir(t, cluster.Kubeconfig, "contain", "pod", "no-such-pod", "-n", f.ns)
	if code != cli.ExitNotFound {
		t.Errorf("exit %d, want %d", code, cli.ExitNotFound)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no-such-pod") || out != "" {
		t.Errorf("want one line naming the pod on stderr and nothing on stdout; stderr %q stdout %q", errOut, out)
	}
	code, _, _ = kir(t, cluster.Kubeconfig, "contain", "pod", "-l", "app=nothing", "-n", f.ns)
	if code != cli.ExitNotFound {
		t.Errorf("selector matching nothing: exit %d, want %d", code, cli.ExitNotFound)
	}
}

func TestCLIUnreachableAPIServerExits5(t *testing.T) {
	t.Parallel()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := *cluster.Config
	cfg.Host = "https://127.0.0.1:1" // nothing listens there
	if err := cluster.WriteKubeconfig(kc, &cfg); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := kir(t, kc, "contain", "pod", "x", "-n", "default", "--request-timeout", "5s")
	if code != cli.ExitUnreachable || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d stderr %q, want %d and one line", code, errOut, cli.ExitUnreachable)
	}
}

// TestServiceAccountBoundToDeployRBACCanContainAndRelease proves
// deploy/rbac.yaml is enough: a ServiceAccount bound to kir-contain and
// kir-collect contains (collecting evidence), drains and releases; and
// both roles stay least-privilege.
func TestServiceAccountBoundToDeployRBACCanContainAndRelease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	ctx := t.Context()
	raw, err := os.ReadFile("../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := cli.RBACManifest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Fatal("deploy/rbac.yaml is out of date with the actions' declared rules: run `go run ./cmd/kir rbac > deploy/rbac.yaml`")
	}
	roles := map[string]rbacv1.ClusterRole{}
	for _, doc := range strings.Split(string(raw), "\n---\n")[1:] {
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
			t.Fatal(err)
		}
		roles[role.Name] = role
	}
	if _, err := cluster.Client.CoreV1().ServiceAccounts(f.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "responder", Namespace: f.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A responder's roles: containment and evidence, not the opt-in ones.
	for _, name := range []string{"kir-contain", "kir-collect"} {
		role, ok := roles[name]
		if !ok {
			t.Fatalf("deploy/rbac.yaml has no %s", name)
		}
		for _, r := range role.Rules {
			for _, s := range append(append([]string{}, r.Resources...), r.Verbs...) {
				if s == "*" || s == "secrets" || s == "pods/exec" || s == "nodes/proxy" {
					t.Errorf("%s grants %q: not least privilege", name, s)
				}
			}
		}
		role.Name = name + "-" + f.ns // cluster-scoped: one per test
		if _, err := cluster.Client.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "responder", Namespace: f.ns}},
		}
		if _, err := cluster.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	saCfg, err := cluster.ServiceAccountConfig(ctx, f.ns, "responder")
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cluster.WriteKubeconfig(kc, saCfg); err != nil {
		t.Fatal(err)
	}
	// RBAC bindings take effect at once, but poll doctor briefly anyway:
	// the authorizer's cache may lag a fresh binding.
	var code int
	var out string
	for range 50 {
		if code, out, _ = kir(t, kc, "doctor", "-o", "json"); code == cli.ExitOK {
			break
		}
	}
	if code != cli.ExitOK {
		t.Fatalf("kir doctor as the ServiceAccount: exit %d\n%s", code, out)
	}
	target := f.pods[0].Name
	if code, _, errOut := kir(t, kc, "contain", "pod", target, "-n", f.ns, "--detach"); code != cli.ExitOK {
		t.Fatalf("contain as the ServiceAccount: exit %d: %s", code, errOut)
	}
	if p := f.pod(t, target); p.Annotations[action.AnnotationContainedBy] != "system:serviceaccount:"+f.ns+":responder" {
		t.Errorf("contained-by = %q, want the ServiceAccount", p.Annotations[action.AnnotationContainedBy])
	}
	if code, _, errOut := kir(t, kc, "contain", "node", f.node, "--drain", "--drain-timeout", "60s"); code != cli.ExitOK {
		t.Fatalf("contain node --drain as the ServiceAccount: exit %d: %s", code, errOut)
	}
	if p := f.pod(t, target); p.DeletionTimestamp != nil {
		t.Error("drain evicted the quarantined pod")
	}
	if _, err := cluster.Client.CoreV1().Pods(f.ns).Get(ctx, f.pods[1].Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("drain left the other pod %s: %v", f.pods[1].Name, err)
	}
	if code, _, errOut := kir(t, kc, "release", "pod", target, "-n", f.ns, "--reattach", "--delete"); code != cli.ExitOK {
		t.Fatalf("release as the ServiceAccount: exit %d: %s", code, errOut)
	}
	// Without the binding, the same ServiceAccount is forbidden: exit 4.
	if err := cluster.Client.RbacV1().ClusterRoleBindings().Delete(ctx, "kir-contain-"+f.ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	others := f.waitPods(t, "app=web", 2)
	for range 50 {
		if code, _, _ = kir(t, kc, "contain", "pod", others[0].Name, "-n", f.ns); code != cli.ExitOK {
			break
		}
	}
	if code != cli.ExitForbidden {
		t.Errorf("unbound ServiceAccount: exit %d, want %d", code, cli.ExitForbidden)
	}
}

// TestPlaybookRunPlan: --dry-run=client prints the plan — every step, its
// resolved parameters and whether its condition holds — and changes
// nothing; --dry-run=server -o yaml shows the exact objects the server
// would persist.
func TestPlaybookRunPlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	target := f.pods[0].Name
	before := snapshot(t, f, target)
	code, out, errOut := kir(t, cluster.Kubeconfig, "playbook", "run", "contain-pod", "--set", "namespace="+f.ns, "--set", "name="+target,
		"--set", "allowEgressCIDRs=10.0.0.0/8,192.168.0.0/16", "--dry-run=client")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"step isolate (contain.isolate-pod): succeeded",
		`"allowEgressCIDRs":["10.0.0.0/8","192.168.0.0/16"]`,
		`"name":"` + target + `"`,
		"apply NetworkPolicy " + f.ns + "/kir-quarantine-",
		"step cordon (contain.cordon-node): succeeded",
		"when params.cordon && has(steps.isolate.output.nodes) && size(steps.isolate.output.nodes) > 0: true",
		`with {"nodes":["` + f.node + `"]}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "recorded as run") {
		t.Errorf("a dry run was recorded:\n%s", out)
	}
	if diff := cmp.Diff(before, snapshot(t, f, target)); diff != "" {
		t.Errorf("a client dry run changed the cluster (-before +after):\n%s", diff)
	}

	code, out, errOut = kir(t, cluster.Kubeconfig, "playbook", "run", "contain-pod", "--set", "namespace="+f.ns, "--set", "name="+target, "--set", "cordon=false", "--dry-run=server", "-o", "yaml")
	if code != cli.ExitOK {
		t.Fatalf("server dry run: exit %d: %s", code, errOut)
	}
	var rep cli.Report
	if err := yaml.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	steps := map[string]playbooks.StepRun{}
	for _, s := range rep.Steps {
		steps[s.Name] = s
	}
	if steps["cordon"].Status != "skipped" || len(steps["isolate"].Writes) < 2 || steps["seal"].Status != "succeeded" {
		t.Fatalf("server dry run report: %s", out)
	}
	if _, err := os.Stat(steps["seal"].Params["bundle"].(string)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run wrote the evidence bundle: %v", err)
	}
	policy, _ := json.Marshal(steps["isolate"].Writes[0].Body)
	if !strings.Contains(string(policy), `"uid"`) || !strings.Contains(string(policy), `"policyTypes":["Ingress","Egress"]`) {
		t.Errorf("the first write is not the server's NetworkPolicy object: %s", policy)
	}
	if diff := cmp.Diff(before, snapshot(t, f, target)); diff != "" {
		t.Errorf("a server dry run changed the cluster (-before +after):\n%s", diff)
	}

	_, out, _ = kir(t, cluster.Kubeconfig, "playbook", "run", "contain-pod", "--set", "namespace="+f.ns, "--set", "name="+target, "--dry-run=server")
	for _, want := range []string{"accepted by the server, not persisted", "      kir.dev/quarantine: " + action.QuarantineValue(f.pods[0].UID), "    - Egress"} {
		if !strings.Contains(out, want) {
			t.Errorf("server dry run text lacks %q:\n%s", want, out)
		}
	}

	// Bad parameters are found before connecting.
	code, _, errOut = kir(t, cluster.Kubeconfig, "playbook", "run", "contain-pod", "--set", "namespace="+f.ns, "--set", "nmae=x", "--set", "cordon=maybe")
	if code != cli.ExitUsage || !strings.Contains(errOut, `no parameter "nmae"`) || !strings.Contains(errOut, `parameter "cordon" wants true or false, got "maybe"`) {
		t.Errorf("bad --set: exit %d, %q", code, errOut)
	}
}

// TestEvidenceFailureNeverStopsIsolation: when evidence cannot be written
// (the bundle's directory cannot be created), the pod is isolated and its
// node cordoned all the same; kir says what failed and exits 6 (partial).
func TestEvidenceFailureNeverStopsIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	target := f.pods[0].Name
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := kir(t, cluster.Kubeconfig, "contain", "pod", target, "-n", f.ns, "--out", filepath.Join(blocker, "bundle"))
	if code != cli.ExitPartial {
		t.Errorf("exit %d, want %d (partial)\n%s\n%s", code, cli.ExitPartial, out, errOut)
	}
	if !strings.Contains(out, "snapshot: FAILED") || !strings.Contains(out, "isolated") {
		t.Errorf("output does not say the snapshot failed and the pod was isolated:\n%s", out)
	}
	if p := f.pod(t, target); p.Labels[action.LabelQuarantine] == "" {
		t.Error("a failed evidence step stopped the isolation")
	}
	if n := f.getNode(t); !n.Spec.Unschedulable {
		t.Error("a failed evidence step stopped the cordon")
	}
}
