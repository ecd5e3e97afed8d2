package rotate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vault "github.com/hashicorp/vault/api"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/internal/smserver"
)

// asKirEnv makes the test binary run kir's command line (see TestMain), so
// that tests can kill a real kir process.
const asKirEnv = "KIR_TEST_AS_KIR"

// The real Vault server (dev mode), started by the first test that needs it.
var (
	vaultOnce sync.Once
	vaultSrv  *kubetest.Vault
	vaultErr  error
)

func vaultServer(t *testing.T) (*kubetest.Vault, *vault.Client) {
	t.Helper()
	vaultOnce.Do(func() { vaultSrv, vaultErr = kubetest.StartVault(context.Background()) })
	if vaultErr != nil {
		t.Fatalf("starting Vault: %v", vaultErr)
	}
	cfg := vault.DefaultConfig()
	cfg.Address = vaultSrv.Addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(vaultSrv.Token)
	return vaultSrv, c
}

// secretsManager serves a Secrets Manager-compatible server on loopback
// and returns its endpoint, a client of it and the environment that points
// kir at it.
func secretsManager(t *testing.T) (string, *sm.Client, []string) {
	t.Helper()
	ts := httptest.NewServer(smserver.New())
	t.Cleanup(ts.Close)
	c := sm.NewFromConfig(aws.Config{
		Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "not-a-secret", ""),
		BaseEndpoint: aws.String(ts.URL),
	})
	env := []string{"AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=not-a-secret", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}
	return ts.URL, c, env
}

// result is one kir process's outcome.
type result struct {
	code           int
	stdout, stderr string
}

// kir runs kir as a child process (this test binary) with env added.
func kir(t *testing.T, env []string, args ...string) result {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), self, args...)
	cmd.Env = append(append(os.Environ(), asKirEnv+"=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = -int(ws.Signal())
		}
	default:
		t.Fatalf("running kir %v: %v", args, err)
	}
	return r
}

// mustKir runs kir and fails the test unless it exits 0.
func mustKir(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := kir(t, env, args...)
	if r.code != 0 {
		t.Fatalf("kir %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// runID returns the id of the only run in a state directory.
func runID(t *testing.T, env []string, state string) string {
	t.Helper()
	r := mustKir(t, env, "runs", "list", "--state-dir", state, "-o", "json")
	var runs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) == 0 {
		t.Fatalf("runs list: %v\n%s", err, r.stdout)
	}
	return runs[0].ID
}

// runStatus returns a run's status from kir runs show.
func runStatus(t *testing.T, env []string, state, id string) string {
	t.Helper()
	r := mustKir(t, env, "runs", "show", id, "--state-dir", state, "-o", "json")
	var run struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
		t.Fatalf("runs show: %v\n%s", err, r.stdout)
	}
	return run.Status
}

// noLeak fails the test if any planted value appears in kir's output or in
// any file under dirs.
func noLeak(t *testing.T, planted []string, outputs []result, dirs ...string) {
	t.Helper()
	check := func(where, text string) {
		for _, p := range planted {
			if p != "" && strings.Contains(text, p) {
				t.Errorf("a secret value appears in %s", where)
			}
		}
	}
	for i, r := range outputs {
		check("kir's stdout (call "+string(rune('0'+i))+")", r.stdout)
		check("kir's stderr (call "+string(rune('0'+i))+")", r.stderr)
	}
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			check(path, string(b))
			return nil
		})
	}
}

var generated = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// vaultData reads a Vault secret's current version and data.
func vaultData(t *testing.T, c *vault.Client, mount, path string) (int, map[string]any) {
	t.Helper()
	s, err := c.KVv2(mount).Get(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s.VersionMetadata.Version, s.Data
}

// stagesOf returns a Secrets Manager secret's versions and their labels.
func stagesOf(t *testing.T, c *sm.Client, name string) map[string][]string {
	t.Helper()
	out, err := c.DescribeSecret(t.Context(), &sm.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.VersionIdsToStages {
		slices.Sort(v)
	}
	return out.VersionIdsToStages
}

// awsValue returns a secret's AWSCURRENT value and version id.
func awsValue(t *testing.T, c *sm.Client, name string) (string, string) {
	t.Helper()
	out, err := c.GetSecretValue(t.Context(), &sm.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.SecretString), aws.ToString(out.VersionId)
}

func holderOf(stages map[string][]string, label string) string {
	for v, ls := range stages {
		if slices.Contains(ls, label) {
			return v
		}
	}
	return ""
}

func jsonField(t *testing.T, s, key string) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object of strings: %v", err)
	}
	return m[key]
}
