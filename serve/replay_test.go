package serve_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/action"
	"kir.dev/kir/cmd/kir/internal/cli"
)

// cliMu serialises in-process runs of the command line: urfave/cli v2
// writes to its package-level help flag while parsing.
var cliMu sync.Mutex

func kir(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cliMu.Lock()
	defer cliMu.Unlock()
	code := cli.Run(context.Background(), append([]string{"kir"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestFalcoReplay: kir falco replay runs what a saved alert would
// trigger in kir serve — planned with --dry-run=client, for real without.
func TestFalcoReplay(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1)
	pod := w.pods[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "alert.json")
	if err := os.WriteFile(file, alert(t, w.ns, pod.Name, "uuid-replay"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	common := []string{"--kubeconfig", cluster.Kubeconfig, "--state-dir", state}

	code, out, errOut := kir(t, append([]string{"falco", "replay", file, "--dry-run=client"}, common...)...)
	if code != cli.ExitOK || !strings.Contains(out, "step isolate (contain.isolate-pod)") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	policy := action.PolicyName(action.QuarantineValue(pod.UID))
	if _, err := cluster.Client.NetworkingV1().NetworkPolicies(w.ns).Get(t.Context(), policy, metav1.GetOptions{}); err == nil {
		t.Fatal("a dry run isolated the pod")
	}

	code, out, errOut = kir(t, append([]string{"falco", "replay", file}, common...)...)
	if code != cli.ExitOK {
		t.Fatalf("replay: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "pod "+w.ns+"/"+pod.Name+": isolated") {
		t.Errorf("replay output does not say the pod was isolated:\n%s", out)
	}
	waitIsolated(t, pod, time.Second) // stored before kir returned

	low := filepath.Join(dir, "notice.json")
	if err := os.WriteFile(low, []byte(strings.Replace(string(alert(t, w.ns, pod.Name, "u")), `"priority":"Critical"`, `"priority":"Notice"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := kir(t, append([]string{"falco", "replay", low}, common...)...); code != cli.ExitOK || !strings.Contains(out, "no routing rule") {
		t.Errorf("Notice alert: exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"rule": 42}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := kir(t, append([]string{"falco", "replay", bad}, common...)...); code != cli.ExitUsage || !strings.Contains(errOut, "bad.json") {
		t.Errorf("malformed alert: exit %d %s", code, errOut)
	}
}
