package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vault "github.com/hashicorp/vault/api"

	"kir.dev/kir/internal/kubetest"
)

// The rotation of a Vault KV v2 secret's key: a new version with a
// generated value, the other keys kept, listed by status, rolled back to
// the old value, and never a value in kir's output or state.
func TestRotateVaultSecret(t *testing.T) {
	t.Parallel()
	v, c := vaultServer(t)
	state, env := t.TempDir(), v.Env()
	kir := kubetest.Kir{Env: env}
	path := "app/" + strings.ToLower(t.Name())
	const planted = "PLANTED-vault-original-7f3a"
	if _, err := c.KVv2("secret").Put(t.Context(), path, map[string]any{"username": "app", "password": planted}); err != nil {
		t.Fatal(err)
	}
	ref := "vault://secret/" + path + "#password"
	rot := kir.MustRun(t, "rotate", "secret", ref, "--state-dir", state, "-o", "json")
	ver, data := vaultData(t, c, "secret", path)
	if ver != 2 || data["username"] != "app" || !generated.MatchString(fmt.Sprint(data["password"])) {
		t.Fatalf("after rotation: version %d, username %v, password generated: %t", ver, data["username"], generated.MatchString(fmt.Sprint(data["password"])))
	}
	newValue := data["password"].(string)
	id := runID(t, env, state)
	status := kir.MustRun(t, "rotate", "status", "--state-dir", state)
	if !strings.Contains(status.Stdout, id) || !strings.Contains(status.Stdout, ref) {
		t.Errorf("rotate status does not list %s of %s:\n%s", id, ref, status.Stdout)
	}
	back := kir.MustRun(t, "rotate", "rollback", id, "--state-dir", state)
	ver, data = vaultData(t, c, "secret", path)
	if ver != 3 || data["password"] != planted || data["username"] != "app" {
		t.Fatalf("after rollback: version %d, password restored: %t", ver, data["password"] == planted)
	}
	// A second rollback finds it done.
	again := kir.MustRun(t, "rotate", "rollback", id, "--state-dir", state)
	if ver, _ = vaultData(t, c, "secret", path); ver != 3 {
		t.Errorf("a second rollback wrote version %d", ver)
	}
	noLeak(t, []string{planted, newValue}, []kubetest.Result{rot, status, back, again}, state)
}

// A Vault mount, or a secret, that keeps a single version is refused: the
// rotation would destroy the only copy of the old value, and rollback with
// it.
func TestRotateVaultRefusesSingleVersion(t *testing.T) {
	t.Parallel()
	v, c := vaultServer(t)
	ctx := t.Context()
	if err := c.Sys().MountWithContext(ctx, "single", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	// A new KV v2 mount answers "upgrading" for a moment.
	if err := kubetest.Eventually(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.Logical().WriteWithContext(ctx, "single/config", map[string]any{"max_versions": 1})
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("single").Put(ctx, "db", map[string]any{"token": "x"}); err != nil {
		t.Fatal(err)
	}
	path := "single/" + strings.ToLower(t.Name())
	if _, err := c.KVv2("secret").Put(ctx, path, map[string]any{"token": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := c.KVv2("secret").PatchMetadata(ctx, path, vaultMetaMax(1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ mount, path string }{{"single", "db"}, {"secret", path}} {
		r := kubetest.Kir{Env: v.Env()}.Run(t, "rotate", "secret", "vault://"+tc.mount+"/"+tc.path, "--state-dir", t.TempDir())
		if r.Code == 0 || !strings.Contains(r.Stderr, "max_versions") {
			t.Errorf("%s/%s: want a refusal naming max_versions, got exit %d:\n%s", tc.mount, tc.path, r.Code, r.Stderr)
		}
		if ver, data := vaultData(t, c, tc.mount, tc.path); ver != 1 || data["token"] != "x" {
			t.Errorf("%s/%s: the refused rotation changed the secret: version %d", tc.mount, tc.path, ver)
		}
	}
}

// Someone writes the secret between kir's read and its write: kir stops
// with exit code 9 and overwrites nothing.
func TestRotateVaultConcurrentWriter(t *testing.T) {
	t.Parallel()
	v, c := vaultServer(t)
	state, env := t.TempDir(), v.Env()
	path := "race/" + strings.ToLower(t.Name())
	if _, err := c.KVv2("secret").Put(t.Context(), path, map[string]any{"password": "one"}); err != nil {
		t.Fatal(err)
	}
	// Killed right after noting the version it read…
	r := kubetest.Kir{Env: append(env, "KIR_TEST_KILL_AFTER=step-note:issue#1")}.Run(t, "rotate", "secret", "vault://secret/"+path+"#password", "--state-dir", state)
	if r.Code != -9 {
		t.Fatalf("kir was not killed: exit %d\n%s", r.Code, r.Stderr)
	}
	// …someone else writes…
	if _, err := c.KVv2("secret").Put(t.Context(), path, map[string]any{"password": "theirs"}); err != nil {
		t.Fatal(err)
	}
	// …and the resumed rotation refuses to overwrite it.
	r = kubetest.Kir{Env: env}.Run(t, "runs", "resume", runID(t, env, state), "--state-dir", state)
	if r.Code != 9 || !strings.Contains(r.Stderr, "someone else") {
		t.Fatalf("want exit 9 naming the concurrent writer, got %d:\n%s", r.Code, r.Stderr)
	}
	if ver, data := vaultData(t, c, "secret", path); ver != 2 || data["password"] != "theirs" {
		t.Errorf("the concurrent version was overwritten: version %d", ver)
	}
}

// Someone moves AWSCURRENT between kir's read and its write: kir stops
// with exit code 9 and creates no version.
func TestRotateSecretsManagerConcurrentWriter(t *testing.T) {
	t.Parallel()
	endpoint, c, env := secretsManager(t)
	state, name := t.TempDir(), "race"
	if _, err := c.CreateSecret(t.Context(), &sm.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("one")}); err != nil {
		t.Fatal(err)
	}
	r := kubetest.Kir{Env: append(env, "KIR_TEST_KILL_AFTER=step-note:issue#1")}.Run(t, "rotate", "secret", "aws-sm://"+name, "--endpoint-url", endpoint, "--state-dir", state)
	if r.Code != -9 {
		t.Fatalf("kir was not killed: exit %d\n%s", r.Code, r.Stderr)
	}
	theirs, err := c.PutSecretValue(t.Context(), &sm.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("theirs")})
	if err != nil {
		t.Fatal(err)
	}
	r = kubetest.Kir{Env: env}.Run(t, "runs", "resume", runID(t, env, state), "--state-dir", state)
	if r.Code != 9 || !strings.Contains(r.Stderr, "AWSCURRENT moved") {
		t.Fatalf("want exit 9 naming the move, got %d:\n%s", r.Code, r.Stderr)
	}
	if stages := stagesOf(t, c, name); len(stages) != 2 || holderOf(stages, "AWSCURRENT") != aws.ToString(theirs.VersionId) {
		t.Errorf("after the refusal: %v, want their version current and no third", stages)
	}
}

// A Secrets Manager secret's JSON key: AWSPENDING under the rotation's
// token, the set hook gets the value and the test hook checks it, then
// AWSCURRENT moves (AWSPREVIOUS follows) and AWSPENDING is removed;
// rollback moves AWSCURRENT back.
func TestRotateSecretsManager(t *testing.T) {
	t.Parallel()
	endpoint, c, env := secretsManager(t)
	kir := kubetest.Kir{Env: env}
	state, dir := t.TempDir(), t.TempDir()
	const planted = "PLANTED-aws-original-91c2"
	name := "prod/db"
	if _, err := c.CreateSecret(t.Context(), &sm.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(`{"user":"app","password":"` + planted + `"}`)}); err != nil {
		t.Fatal(err)
	}
	_, oldID := awsValue(t, c, name)
	// The set hook stores what it is given where the "system" reads it;
	// the test hook checks the system has the value it is given.
	pushed := filepath.Join(dir, "pushed")
	setHook := writeScript(t, dir, "set", `cat > `+pushed)
	testHook := writeScript(t, dir, "test", `cmp -s - `+pushed)
	rot := kir.MustRun(t, "rotate", "secret", "aws-sm://"+name+"#password", "--endpoint-url", endpoint,
		"--set-hook", setHook, "--test-hook", testHook, "--state-dir", state, "-o", "json")
	cur, curID := awsValue(t, c, name)
	stages := stagesOf(t, c, name)
	if curID == oldID || jsonField(t, cur, "user") != "app" || !generated.MatchString(jsonField(t, cur, "password")) {
		t.Fatalf("after rotation: current %s (old %s), user %q", curID, oldID, jsonField(t, cur, "user"))
	}
	if holderOf(stages, "AWSPREVIOUS") != oldID || holderOf(stages, "AWSPENDING") != "" || len(stages) != 2 {
		t.Fatalf("after rotation, stages %v: want AWSPREVIOUS on %s and no AWSPENDING", stages, oldID)
	}
	b, err := os.ReadFile(pushed)
	if err != nil || string(b) != jsonField(t, cur, "password") {
		t.Fatalf("the set hook did not receive the new value (%v)", err)
	}
	newValue := string(b)
	id := runID(t, env, state)
	back := kir.MustRun(t, "rotate", "rollback", id, "--state-dir", state)
	cur, curID = awsValue(t, c, name)
	if curID != oldID || jsonField(t, cur, "password") != planted {
		t.Fatalf("after rollback AWSCURRENT is %s, want %s", curID, oldID)
	}
	noLeak(t, []string{planted, newValue}, []kubetest.Result{rot, back}, state)
}

// A leftover AWSPENDING — what an interrupted rotation leaves — is
// removed, and the rotation goes on.
func TestRotateSecretsManagerLeftoverPending(t *testing.T) {
	t.Parallel()
	endpoint, c, env := secretsManager(t)
	name := "leftover"
	if _, err := c.CreateSecret(t.Context(), &sm.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v1")}); err != nil {
		t.Fatal(err)
	}
	left, err := c.PutSecretValue(t.Context(), &sm.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("abandoned"), VersionStages: []string{"AWSPENDING"}})
	if err != nil {
		t.Fatal(err)
	}
	r := kubetest.Kir{Env: env}.MustRun(t, "rotate", "secret", "aws-sm://"+name, "--endpoint-url", endpoint, "--state-dir", t.TempDir())
	stages := stagesOf(t, c, name)
	if len(stages[aws.ToString(left.VersionId)]) != 0 || holderOf(stages, "AWSPENDING") != "" {
		t.Errorf("the leftover AWSPENDING was not removed: %v", stages)
	}
	if !strings.Contains(r.Stdout+r.Stderr, "interrupted rotation") {
		t.Errorf("kir did not say it removed the leftover AWSPENDING:\n%s%s", r.Stdout, r.Stderr)
	}
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name+".sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nset -e\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func vaultMetaMax(n int) vault.KVMetadataPatchInput {
	return vault.KVMetadataPatchInput{MaxVersions: &n}
}

// --key-spec gives one key of a whole-secret rotation its own length and
// alphabet; settings for a key the secret lacks, or malformed ones, are
// refused before anything is written.
func TestRotateVaultKeySpecs(t *testing.T) {
	t.Parallel()
	v, c := vaultServer(t)
	state, env := t.TempDir(), v.Env()
	kir := kubetest.Kir{Env: env}
	path := "app/" + strings.ToLower(t.Name())
	if _, err := c.KVv2("secret").Put(t.Context(), path, map[string]any{"password": "old-password", "pin": "1234"}); err != nil {
		t.Fatal(err)
	}
	ref := "vault://secret/" + path
	kir.MustRun(t, "rotate", "secret", ref, "--key-spec", "pin=6:0123456789", "--state-dir", state)
	ver, data := vaultData(t, c, "secret", path)
	if pin := fmt.Sprint(data["pin"]); ver != 2 || !regexp.MustCompile(`^[0-9]{6}$`).MatchString(pin) {
		t.Errorf("version %d, pin of %d characters all digits: %t; want version 2 and 6 digits", ver, len(pin), regexp.MustCompile(`^[0-9]+$`).MatchString(pin))
	}
	if !generated.MatchString(fmt.Sprint(data["password"])) {
		t.Error("password was not given a default generated value")
	}
	for _, tc := range []struct {
		spec string
		code int
		msg  string
	}{
		{"nope=4", 3, `key "nope" has its own length or alphabet`},
		{"pin=six", 2, "the length must be a positive number"},
		{"pin=6:", 2, "the alphabet after ':' is empty"},
	} {
		r := kir.Run(t, "rotate", "secret", ref, "--key-spec", tc.spec, "--state-dir", state)
		if r.Code != tc.code || !strings.Contains(r.Stdout+r.Stderr, tc.msg) {
			t.Errorf("--key-spec %s: exit %d, want %d saying %q\nstdout:\n%s\nstderr:\n%s", tc.spec, r.Code, tc.code, tc.msg, r.Stdout, r.Stderr)
		}
		if ver, _ := vaultData(t, c, "secret", path); ver != 2 {
			t.Errorf("--key-spec %s wrote version %d", tc.spec, ver)
		}
	}
	// One value from a file never lands in every key.
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, []byte("PLANTED-one-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kir.Run(t, "rotate", "secret", ref, "--from-file", file, "--state-dir", state)
	if r.Code == 0 || !strings.Contains(r.Stderr, "name the key to set") {
		t.Errorf("--from-file on a secret of two keys: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	if ver, _ := vaultData(t, c, "secret", path); ver != 2 {
		t.Errorf("--from-file on a secret of two keys wrote version %d", ver)
	}
	noLeak(t, []string{"PLANTED-one-value"}, []kubetest.Result{r}, state)
}
