package smserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/internal/kubetest"
	"kir.dev/kir/internal/smserver"
)

// TestAgainstKumo runs one sequence of Create/Put/Get/Describe/Delete
// calls against smserver and against kumo (github.com/sivchari/kumo), an
// emulator written independently of this one, and compares what a caller
// of the SDK observes: values, the labels on each version, and the types
// of the errors. A disagreement means one of the two misreads the API.
//
// The sequence leaves out what kumo is known to get wrong against the API
// reference, which the other tests of this package pin down for smserver:
//   - CreateSecret ignores ClientRequestToken (the first VersionId is a
//     fresh UUID), and PutSecretValue has no token idempotency;
//   - each PutSecretValue turns every AWSCURRENT into AWSPREVIOUS, even
//     when VersionStages does not name AWSCURRENT (a put to AWSPENDING
//     leaves the secret with no AWSCURRENT at all), and never takes
//     AWSPREVIOUS off the older version, so every put after the first
//     leaves one more version AWSPREVIOUS;
//   - GetSecretValue with both VersionId and VersionStage ignores the stage;
//   - CreateSecret over a name scheduled for deletion answers
//     ResourceExistsException (AWS: InvalidRequestException), and a
//     forced DeleteSecret of a missing secret ResourceNotFoundException
//     (the API reference: it does not);
//   - there is no UpdateSecretVersionStage or ListSecretVersionIds.
func TestAgainstKumo(t *testing.T) {
	t.Parallel()
	bin := kumoBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	hs := httptest.NewServer(smserver.New())
	t.Cleanup(hs.Close)
	ours := observeAll(ctx, sdkClient(hs.URL))
	theirs := observeAll(ctx, sdkClient(startKumo(ctx, t, bin)))

	for i, s := range crossSteps {
		if diff := cmp.Diff(ours[i], theirs[i]); diff != "" {
			t.Errorf("step %d, %s: smserver and kumo differ (-smserver +kumo):\n%s", i, s.name, diff)
		}
	}
	// The comparison is only worth something if the steps did what they
	// say: spot-check smserver's side.
	if got := ours[len(ours)-1]; got.Err != "*types.ResourceNotFoundException" {
		t.Errorf("last step observed %+v, want a ResourceNotFoundException", got)
	}
}

// observation is what one step showed the caller.
type observation struct {
	// Err is the Go type of the SDK's error, such as
	// "*types.ResourceNotFoundException"; empty on success.
	Err string
	// Value is a secret value read, Stages the labels of the version
	// concerned, Versions each version's labels by its alias.
	Value    string
	Stages   []string
	Versions map[string][]string
	Deleted  bool
}

// aliases names version IDs v0, v1, ... in the order a sequence first sees
// them, so that two servers' random IDs compare equal.
type aliases map[string]string

func (a aliases) of(id string) string {
	if _, ok := a[id]; !ok {
		a[id] = fmt.Sprintf("v%d", len(a))
	}
	return a[id]
}

type crossStep struct {
	name string
	run  func(ctx context.Context, c *secretsmanager.Client, a aliases) (observation, error)
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func get(in secretsmanager.GetSecretValueInput) func(context.Context, *secretsmanager.Client, aliases) (observation, error) {
	return func(ctx context.Context, c *secretsmanager.Client, a aliases) (observation, error) {
		out, err := c.GetSecretValue(ctx, &in)
		if err != nil {
			return observation{}, err
		}
		a.of(aws.ToString(out.VersionId))
		v := aws.ToString(out.SecretString)
		if out.SecretBinary != nil {
			v = fmt.Sprintf("binary %x", out.SecretBinary)
		}
		return observation{Value: v, Stages: sorted(out.VersionStages)}, nil
	}
}

func describe(id string) func(context.Context, *secretsmanager.Client, aliases) (observation, error) {
	return func(ctx context.Context, c *secretsmanager.Client, a aliases) (observation, error) {
		out, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		if err != nil {
			return observation{}, err
		}
		// Aliases in creation order would need dates; the steps only
		// describe after every version has been seen by a put or get.
		o := observation{Versions: map[string][]string{}, Deleted: out.DeletedDate != nil}
		for vid, st := range out.VersionIdsToStages {
			o.Versions[a.of(vid)] = sorted(st)
		}
		return o, nil
	}
}

func put(id, value string) func(context.Context, *secretsmanager.Client, aliases) (observation, error) {
	return func(ctx context.Context, c *secretsmanager.Client, a aliases) (observation, error) {
		out, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)})
		if err != nil {
			return observation{}, err
		}
		a.of(aws.ToString(out.VersionId))
		return observation{Stages: sorted(out.VersionStages)}, nil
	}
}

func create(in secretsmanager.CreateSecretInput) func(context.Context, *secretsmanager.Client, aliases) (observation, error) {
	return func(ctx context.Context, c *secretsmanager.Client, a aliases) (observation, error) {
		out, err := c.CreateSecret(ctx, &in)
		if err != nil {
			return observation{}, err
		}
		if !strings.HasPrefix(aws.ToString(out.ARN), "arn:aws:secretsmanager:") || aws.ToString(out.Name) != aws.ToString(in.Name) {
			return observation{}, fmt.Errorf("CreateSecret answered ARN %q, Name %q", aws.ToString(out.ARN), aws.ToString(out.Name))
		}
		if out.VersionId != nil {
			a.of(aws.ToString(out.VersionId))
		}
		return observation{}, nil
	}
}

func deleteSecret(in secretsmanager.DeleteSecretInput) func(context.Context, *secretsmanager.Client, aliases) (observation, error) {
	return func(ctx context.Context, c *secretsmanager.Client, _ aliases) (observation, error) {
		_, err := c.DeleteSecret(ctx, &in)
		return observation{}, err
	}
}

// crossSteps is the sequence both servers are put through, in order.
var crossSteps = []crossStep{
	{"create with a value", create(secretsmanager.CreateSecretInput{Name: aws.String("x/a"), SecretString: aws.String("zero")})},
	{"get current", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/a")})},
	{"describe one version", describe("x/a")},
	{"put a second value", put("x/a", "one")},
	{"get current after put", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/a"), VersionStage: aws.String("AWSCURRENT")})},
	{"get previous", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/a"), VersionStage: aws.String("AWSPREVIOUS")})},
	{"describe two versions", describe("x/a")},
	{"get a label nobody has", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/a"), VersionStage: aws.String("AWSPENDING")})},
	{"get a missing secret", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/missing")})},
	{"describe a missing secret", describe("x/missing")},
	{"put to a missing secret", put("x/missing", "v")},
	{"create an existing name", create(secretsmanager.CreateSecretInput{Name: aws.String("x/a"), SecretString: aws.String("again")})},
	{"create binary", create(secretsmanager.CreateSecretInput{Name: aws.String("x/bin"), SecretBinary: []byte{0, 1, 0xfe, 0xff}})},
	{"get binary", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/bin")})},
	{"schedule deletion", deleteSecret(secretsmanager.DeleteSecretInput{SecretId: aws.String("x/a"), RecoveryWindowInDays: aws.Int64(7)})},
	{"describe scheduled", describe("x/a")},
	{"get scheduled", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/a")})},
	{"put to scheduled", put("x/a", "two")},
	{"force delete", deleteSecret(secretsmanager.DeleteSecretInput{SecretId: aws.String("x/a"), ForceDeleteWithoutRecovery: aws.Bool(true)})},
	{"describe force deleted", describe("x/a")},
	{"recreate the name", create(secretsmanager.CreateSecretInput{Name: aws.String("x/a"), SecretString: aws.String("three")})},
	{"get recreated", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/a")})},
	{"force delete binary", deleteSecret(secretsmanager.DeleteSecretInput{SecretId: aws.String("x/bin"), ForceDeleteWithoutRecovery: aws.Bool(true)})},
	{"get force deleted", get(secretsmanager.GetSecretValueInput{SecretId: aws.String("x/bin")})},
}

// observeAll runs crossSteps against one server.
func observeAll(ctx context.Context, c *secretsmanager.Client) []observation {
	a := aliases{}
	var obs []observation
	for _, s := range crossSteps {
		o, err := s.run(ctx, c, a)
		if err != nil {
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) {
				o = observation{Err: fmt.Sprintf("%T", apiErr)}
			} else {
				o = observation{Err: "not an API error: " + err.Error()}
			}
		}
		obs = append(obs, o)
	}
	return obs
}

// kumoBinary returns the kumo that internal/kubetest/tools/build.sh
// builds. Missing, it fails the test: the cross-check is never skipped.
func kumoBinary(t *testing.T) string {
	t.Helper()
	bin, err := kubetest.Binary("kumo")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startKumo runs kumo on a free port of 127.0.0.1 until the test ends and
// returns its endpoint once it answers. A port can be taken between asking
// the kernel for it and kumo binding it; kumo then exits and is started
// again on another.
func startKumo(ctx context.Context, t *testing.T, bin string) string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUMO_") { // no persistence, no init scripts
			env = append(env, kv)
		}
	}
	env = append(env, "KUMO_LOG_LEVEL=error")

	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a port for kumo: %v", err)
		}
		cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
		cmd.Env = env
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting kumo: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
		if lastErr = waitReady(ctx, endpoint, exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return endpoint
		}
		_ = cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%w; kumo's output:\n%s", lastErr, out.String())
	}
	t.Fatalf("kumo did not start: %v", lastErr)
	return ""
}

// waitReady polls kumo until a Secrets Manager call gets an API answer.
func waitReady(ctx context.Context, endpoint string, exited <-chan error) error {
	c := sdkClient(endpoint)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("readiness-probe")}, func(o *secretsmanager.Options) {
			o.RetryMaxAttempts = 1
		})
		var apiErr smithy.APIError
		if err == nil || errors.As(err, &apiErr) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("kumo exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("kumo not answering at %s: %w", endpoint, err)
		case <-tick.C:
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects a process's output, written from exec's copying
// goroutines and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
