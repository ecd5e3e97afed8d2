package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/playbooks"
)

func TestCLIContainAndReleaseWithFlagsAfterNames(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig}
	f := newFixture(t, 2)
	target := f.Pods[0].Name
	before := f.Snapshot(t, target)
	keys := t.TempDir()
	if err := evidence.Keygen(keys, evidence.AlgEd25519); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(keys, evidence.PrivateKeyFile)
	bundle := filepath.Join(t.TempDir(), "evidence")

	r := kir.Run(t, "contain", "pod", target, "-n", f.Namespace, "--incident", "inc-cli", "-o", "json", "--key", key, "--out", bundle)
	if r.Code != cli.ExitOK {
		t.Fatalf("contain exit %d, stderr %q", r.Code, r.Stderr)
	}
	var rep cli.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("-o json is not a report: %v\n%s", err, r.Stdout)
	}
	var actions []string
	for _, s := range rep.Steps {
		if s.Status == "succeeded" {
			actions = append(actions, s.Action)
		}
	}
	if rep.Status != "succeeded" || rep.Incident != "inc-cli" || strings.Join(actions, " ") != "collect.snapshot-pod contain.isolate-pod contain.confirm-isolation contain.cordon-node collect.pod collect.node-capture collect.seal" {
		t.Errorf("report = status %q incident %q steps %+v", rep.Status, rep.Incident, rep.Steps)
	}
	if p := f.Pod(t, target); p.Labels[action.LabelQuarantine] == "" {
		t.Fatal("pod not labelled after kir contain pod")
	}
	if n := f.GetNode(t); !n.Spec.Unschedulable {
		t.Error("node not cordoned after kir contain pod")
	}

	r = kir.Run(t, "release", "pod", target, "-n", f.Namespace, "--evidence", bundle, "--key", key)
	if r.Code != cli.ExitOK {
		t.Fatalf("release exit %d, stderr %q", r.Code, r.Stderr)
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
	if !strings.Contains(r.Stdout, "released") {
		t.Errorf("release output does not say released:\n%s", r.Stdout)
	}
	if got := f.Snapshot(t, target); !equalState(before, got) {
		t.Errorf("state after CLI release differs: before %+v after %+v", before, got)
	}

	// Releasing again: nothing to do, says so, exits 0 (like rm -f).
	r = kir.Run(t, "release", "pod", target, "-n", f.Namespace)
	if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, "not contained by kir") {
		t.Errorf("second release: exit %d, output %q", r.Code, r.Stdout)
	}
}

func equalState(a, b kubetest.Snapshot) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestCLIMissingPodIsOneLineAndExit3(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig}
	f := newFixture(t, 0)
	r := kir.Run(t, "contain", "pod", "no-such-pod", "-n", f.Namespace)
	if r.Code != cli.ExitNotFound {
		t.Errorf("exit %d, want %d", r.Code, cli.ExitNotFound)
	}
	if strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "no-such-pod") || r.Stdout != "" {
		t.Errorf("want one line naming the pod on stderr and nothing on stdout; stderr %q stdout %q", r.Stderr, r.Stdout)
	}
	r = kir.Run(t, "contain", "pod", "-l", "app=nothing", "-n", f.Namespace)
	if r.Code != cli.ExitNotFound {
		t.Errorf("selector matching nothing: exit %d, want %d", r.Code, cli.ExitNotFound)
	}
}

// TestCLIBlankSelectorOrBadNameIsUsage gives kir contain pod a selector
// that would select every pod of the namespace, and names that are no
// names: each exits 2 naming the parameter and the value, and nothing in
// the cluster changes, no run is recorded.
func TestCLIBlankSelectorOrBadNameIsUsage(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	f := newFixture(t, 2)
	state := t.TempDir()
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig, StateDir: state}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"contain", "pod", "-l", " ", "-n", f.Namespace}, `parameter "selector": " " is not a label selector: it is empty`},
		{[]string{"contain", "pod", "-l", "\t", "-n", f.Namespace}, `is not a label selector`},
		{[]string{"contain", "pod", "-l", "app in (web", "-n", f.Namespace}, `parameter "selector": "app in (web" is not a label selector`},
		{[]string{"contain", "pod", "web,app", "-n", f.Namespace}, `parameter "name": "web,app" is not a pod name`},
		{[]string{"contain", "pod", f.Pods[0].Name, "-n", "Kube System"}, `parameter "namespace": "Kube System" is not a namespace`},
		{[]string{"release", "pod", "-l", " ", "-n", f.Namespace}, `parameter "selector": " " is not a label selector`},
	} {
		r := kir.Run(t, tt.args...)
		if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, tt.want) {
			t.Errorf("kir %q: exit %d, stderr %q; want %d and %q", tt.args, r.Code, r.Stderr, cli.ExitUsage, tt.want)
		}
	}
	pods, err := c.Client.CoreV1().Pods(f.Namespace).List(t.Context(), metav1.ListOptions{LabelSelector: action.LabelQuarantine})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("quarantined pods: %d (%v), want none", len(pods.Items), err)
	}
	pols, err := c.Client.NetworkingV1().NetworkPolicies(f.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil || len(pols.Items) != 0 {
		t.Errorf("network policies: %d (%v), want none", len(pols.Items), err)
	}
	node, err := c.Client.CoreV1().Nodes().Get(t.Context(), f.Node, metav1.GetOptions{})
	if err != nil || node.Spec.Unschedulable || slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == action.TaintKey }) {
		t.Errorf("node %s: unschedulable %v, taints %v (%v); want it untouched", f.Node, node.Spec.Unschedulable, node.Spec.Taints, err)
	}
	var runs []string
	_ = filepath.WalkDir(state, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".journal") {
			runs = append(runs, path)
		}
		return nil
	})
	if len(runs) != 0 {
		t.Errorf("runs recorded: %v, want none", runs)
	}
}

func TestCLIUnreachableAPIServerExits5(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := *c.Config
	cfg.Host = "https://127.0.0.1:1" // nothing listens there
	if err := c.WriteKubeconfig(kc, &cfg); err != nil {
		t.Fatal(err)
	}
	r := kubetest.Kir{Kubeconfig: kc}.Run(t, "contain", "pod", "x", "-n", "default", "--request-timeout", "5s")
	if r.Code != cli.ExitUnreachable || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("exit %d stderr %q, want %d and one line", r.Code, r.Stderr, cli.ExitUnreachable)
	}
}

// TestServiceAccountBoundToDeployRBACCanContainAndRelease proves
// deploy/components/rbac/rbac.yaml is enough: a ServiceAccount bound to kir-contain and
// kir-collect contains (collecting evidence), drains and releases; and
// both roles stay least-privilege.
func TestServiceAccountBoundToDeployRBACCanContainAndRelease(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	f := newFixture(t, 2)
	ctx := t.Context()
	raw, err := os.ReadFile("../../../../deploy/components/rbac/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := cli.RBACManifest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Fatal("deploy/components/rbac/rbac.yaml is out of date with the actions' declared rules: run `go run ./cmd/kir rbac > deploy/components/rbac/rbac.yaml`")
	}
	roles := map[string]rbacv1.ClusterRole{}
	for _, doc := range strings.Split(string(raw), "\n---\n")[1:] {
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
			t.Fatal(err)
		}
		roles[role.Name] = role
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(f.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "responder", Namespace: f.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A responder's roles: containment and evidence, not the opt-in ones.
	for _, name := range []string{"kir-contain", "kir-collect"} {
		role, ok := roles[name]
		if !ok {
			t.Fatalf("deploy/components/rbac/rbac.yaml has no %s", name)
		}
		for _, r := range role.Rules {
			for _, s := range append(append([]string{}, r.Resources...), r.Verbs...) {
				if s == "*" || s == "secrets" || s == "pods/exec" || s == "nodes/proxy" {
					t.Errorf("%s grants %q: not least privilege", name, s)
				}
			}
		}
		role.Name = name + "-" + f.Namespace // cluster-scoped: one per test
		if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "responder", Namespace: f.Namespace}},
		}
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	saCfg, err := c.ServiceAccountConfig(ctx, f.Namespace, "responder")
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.WriteKubeconfig(kc, saCfg); err != nil {
		t.Fatal(err)
	}
	// RBAC bindings take effect at once, but poll doctor briefly anyway:
	// the authorizer's cache may lag a fresh binding.
	kir := kubetest.Kir{Kubeconfig: kc}
	var r kubetest.Result
	for range 50 {
		if r = kir.Run(t, "doctor", "-o", "json"); r.Code == cli.ExitOK {
			break
		}
	}
	if r.Code != cli.ExitOK {
		t.Fatalf("kir doctor as the ServiceAccount: exit %d\n%s", r.Code, r.Stdout)
	}
	target := f.Pods[0].Name
	if r := kir.Run(t, "contain", "pod", target, "-n", f.Namespace, "--detach"); r.Code != cli.ExitOK {
		t.Fatalf("contain as the ServiceAccount: exit %d: %s", r.Code, r.Stderr)
	}
	pol, err := c.Client.NetworkingV1().NetworkPolicies(f.Namespace).Get(ctx, action.PolicyName(string(f.Pods[0].UID)), metav1.GetOptions{})
	if err != nil || pol.Annotations[action.AnnotationContainedBy] != "system:serviceaccount:"+f.Namespace+":responder" {
		t.Errorf("the policy's contained-by = %q (%v), want the ServiceAccount", pol.Annotations[action.AnnotationContainedBy], err)
	}
	if r := kir.Run(t, "contain", "node", f.Node, "--drain", "--yes", "--drain-timeout", "60s"); r.Code != cli.ExitOK {
		t.Fatalf("contain node --drain as the ServiceAccount: exit %d: %s", r.Code, r.Stderr)
	}
	if p := f.Pod(t, target); p.DeletionTimestamp != nil {
		t.Error("drain evicted the quarantined pod")
	}
	if _, err := c.Client.CoreV1().Pods(f.Namespace).Get(ctx, f.Pods[1].Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("drain left the other pod %s: %v", f.Pods[1].Name, err)
	}
	if r := kir.Run(t, "release", "pod", target, "-n", f.Namespace, "--reattach", "--delete"); r.Code != cli.ExitOK {
		t.Fatalf("release as the ServiceAccount: exit %d: %s", r.Code, r.Stderr)
	}
	// Without the binding, the same ServiceAccount is forbidden: exit 4.
	if err := c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, "kir-contain-"+f.Namespace, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	others := f.WaitPods(t, "app=web", 2)
	for range 50 {
		if r = kir.Run(t, "contain", "pod", others[0].Name, "-n", f.Namespace); r.Code != cli.ExitOK {
			break
		}
	}
	if r.Code != cli.ExitForbidden {
		t.Errorf("unbound ServiceAccount: exit %d, want %d", r.Code, cli.ExitForbidden)
	}
}

// TestPlaybookRunPlan: --dry-run=client prints the plan — every step, its
// resolved parameters and whether its condition holds — and changes
// nothing; --dry-run=server -o yaml shows the exact objects the server
// would persist.
func TestPlaybookRunPlan(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig}
	f := newFixture(t, 1)
	target := f.Pods[0].Name
	before := f.Snapshot(t, target)
	r := kir.Run(t, "playbook", "run", "contain-pod", "--set", "namespace="+f.Namespace, "--set", "name="+target,
		"--set", "allowEgressCIDRs=10.0.0.0/8,192.168.0.0/16", "--dry-run=client")
	if r.Code != cli.ExitOK {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"step isolate (contain.isolate-pod): succeeded",
		`"allowEgressCIDRs":["10.0.0.0/8","192.168.0.0/16"]`,
		`"name":"` + target + `"`,
		"apply NetworkPolicy " + f.Namespace + "/kir-quarantine-",
		"step cordon (contain.cordon-node): succeeded",
		"when params.cordon && has(steps.isolate.output.nodes) && size(steps.isolate.output.nodes) > 0: true",
		`with {"nodes":["` + f.Node + `"]}`,
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "recorded as run") {
		t.Errorf("a dry run was recorded:\n%s", r.Stdout)
	}
	if diff := cmp.Diff(before, f.Snapshot(t, target)); diff != "" {
		t.Errorf("a client dry run changed the cluster (-before +after):\n%s", diff)
	}

	r = kir.Run(t, "playbook", "run", "contain-pod", "--set", "namespace="+f.Namespace, "--set", "name="+target, "--set", "cordon=false", "--dry-run=server", "-o", "yaml")
	if r.Code != cli.ExitOK {
		t.Fatalf("server dry run: exit %d: %s", r.Code, r.Stderr)
	}
	var rep cli.Report
	if err := yaml.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatal(err)
	}
	steps := map[string]playbooks.StepRun{}
	for _, s := range rep.Steps {
		steps[s.Name] = s
	}
	if steps["cordon"].Status != "skipped" || len(steps["isolate"].Writes) < 2 || steps["seal"].Status != "succeeded" {
		t.Fatalf("server dry run report: %s", r.Stdout)
	}
	if _, err := os.Stat(steps["seal"].Params["bundle"].(string)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run wrote the evidence bundle: %v", err)
	}
	// Label first: the pod's quarantine label, then the policy that
	// selects it, as the server returned it.
	writes := steps["isolate"].Writes
	if writes[0].Kind != "Pod" || writes[1].Kind != "NetworkPolicy" {
		t.Errorf("isolate's writes are %s then %s, want the Pod's label then the NetworkPolicy", writes[0].Kind, writes[1].Kind)
	}
	policy, _ := json.Marshal(writes[1].Body)
	if !strings.Contains(string(policy), `"uid"`) || !strings.Contains(string(policy), `"policyTypes":["Ingress","Egress"]`) {
		t.Errorf("the second write is not the server's NetworkPolicy object: %s", policy)
	}
	if diff := cmp.Diff(before, f.Snapshot(t, target)); diff != "" {
		t.Errorf("a server dry run changed the cluster (-before +after):\n%s", diff)
	}

	r = kir.Run(t, "playbook", "run", "contain-pod", "--set", "namespace="+f.Namespace, "--set", "name="+target, "--dry-run=server")
	for _, want := range []string{"accepted by the server, not persisted", "      kir.dev/quarantine: " + action.QuarantineValue(f.Pods[0].UID), "    - Egress"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("server dry run text lacks %q:\n%s", want, r.Stdout)
		}
	}

	// A step that needs approval is planned, not run, and nobody is asked.
	r = kir.Run(t, "playbook", "run", "contain-node", "--set", "node="+f.Node, "--set", "drain=true", "--dry-run=client")
	if r.Code != cli.ExitOK || !strings.Contains(r.Stdout, "step drain (contain.drain-node): needs-approval") || strings.Contains(r.Stderr, "approve") {
		t.Errorf("dry run of a drain: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Bad parameters are found before connecting.
	r = kir.Run(t, "playbook", "run", "contain-pod", "--set", "namespace="+f.Namespace, "--set", "nmae=x", "--set", "cordon=maybe")
	if r.Code != cli.ExitUsage || !strings.Contains(r.Stderr, `no parameter "nmae"`) || !strings.Contains(r.Stderr, `parameter "cordon" wants true or false, got "maybe"`) {
		t.Errorf("bad --set: exit %d, %q", r.Code, r.Stderr)
	}
}

// TestEvidenceFailureNeverStopsIsolation: when evidence cannot be written
// (the bundle's directory cannot be created), the pod is isolated and its
// node cordoned all the same; kir says what failed and exits 6 (partial).
func TestEvidenceFailureNeverStopsIsolation(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	kir := kubetest.Kir{Kubeconfig: c.Kubeconfig}
	f := newFixture(t, 1)
	target := f.Pods[0].Name
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := kir.Run(t, "contain", "pod", target, "-n", f.Namespace, "--out", filepath.Join(blocker, "bundle"))
	if r.Code != cli.ExitPartial {
		t.Errorf("exit %d, want %d (partial)\n%s\n%s", r.Code, cli.ExitPartial, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "snapshot: FAILED") || !strings.Contains(r.Stdout, "isolated") {
		t.Errorf("output does not say the snapshot failed and the pod was isolated:\n%s", r.Stdout)
	}
	if p := f.Pod(t, target); p.Labels[action.LabelQuarantine] == "" {
		t.Error("a failed evidence step stopped the isolation")
	}
	if n := f.GetNode(t); !n.Spec.Unschedulable {
		t.Error("a failed evidence step stopped the cordon")
	}
}
