package cli_test

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vault "github.com/hashicorp/vault/api"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/internal/smserver"
)

// vaultServer returns the Vault server the tests share
// (kubetest.SharedVault) and a root client of it. Tests use paths of their
// own.
func vaultServer(t *testing.T) (*kubetest.Vault, *vault.Client) {
	t.Helper()
	v := kubetest.SharedVault(t)
	return v, v.Client(t)
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

// runID returns the id of the only run in a state directory.
func runID(t *testing.T, env []string, state string) string {
	t.Helper()
	r := kubetest.Kir{Env: env}.MustRun(t, "runs", "list", "--state-dir", state, "-o", "json")
	var runs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &runs); err != nil || len(runs) == 0 {
		t.Fatalf("runs list: %v\n%s", err, r.Stdout)
	}
	return runs[0].ID
}

// runStatus returns a run's status from kir runs show.
func runStatus(t *testing.T, env []string, state, id string) string {
	t.Helper()
	r := kubetest.Kir{Env: env}.MustRun(t, "runs", "show", id, "--state-dir", state, "-o", "json")
	var run struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil {
		t.Fatalf("runs show: %v\n%s", err, r.Stdout)
	}
	return run.Status
}

// noLeak fails the test if any planted value appears in kir's output or in
// any file under dirs.
func noLeak(t *testing.T, planted []string, outputs []kubetest.Result, dirs ...string) {
	t.Helper()
	check := func(where, text string) {
		for _, p := range planted {
			if p != "" && strings.Contains(text, p) {
				t.Errorf("a secret value appears in %s", where)
			}
		}
	}
	for i, r := range outputs {
		check("kir's stdout (call "+string(rune('0'+i))+")", r.Stdout)
		check("kir's stderr (call "+string(rune('0'+i))+")", r.Stderr)
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
