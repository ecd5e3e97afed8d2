package smserver_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/internal/smserver"
)

// Tokens are 32 to 64 characters, as Secrets Manager requires.
const (
	tok0 = "00000000-0000-4000-8000-000000000000"
	tok1 = "11111111-1111-4111-8111-111111111111"
	tok2 = "22222222-2222-4222-8222-222222222222"
)

// newClient starts a server and returns it with a real SDK client pointed
// at it, signing with throwaway static credentials as any test would.
func newClient(t *testing.T) (*smserver.Server, *secretsmanager.Client) {
	t.Helper()
	srv := smserver.New()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, sdkClient(hs.URL)
}

func sdkClient(endpoint string) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		BaseEndpoint: aws.String(endpoint),
		// Retries as the SDK does them, without the backoff sleeps.
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	})
}

// stages returns DescribeSecret's VersionIdsToStages with each list sorted,
// after checking the invariant AWS keeps: a label is on at most one version.
func stages(t *testing.T, c *secretsmanager.Client, id string) map[string][]string {
	t.Helper()
	out, err := c.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeSecret(%s): %v", id, err)
	}
	seen := make(map[string]string)
	for v, labels := range out.VersionIdsToStages {
		slices.Sort(labels)
		for _, l := range labels {
			if other, ok := seen[l]; ok {
				t.Errorf("label %s is on versions %s and %s", l, other, v)
			}
			seen[l] = v
		}
	}
	return out.VersionIdsToStages
}

func getValue(t *testing.T, c *secretsmanager.Client, in *secretsmanager.GetSecretValueInput) string {
	t.Helper()
	out, err := c.GetSecretValue(t.Context(), in)
	if err != nil {
		t.Fatalf("GetSecretValue(%s, id=%q, stage=%q): %v", aws.ToString(in.SecretId), aws.ToString(in.VersionId), aws.ToString(in.VersionStage), err)
	}
	return aws.ToString(out.SecretString)
}

// isA reports whether err is, or wraps, an error of type T, the way a
// caller of the SDK tells AWS errors apart.
func isA[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func mustBe[T error](t *testing.T, what string, err error) {
	t.Helper()
	if !isA[T](err) {
		t.Errorf("%s: got error %v (%T), want %T", what, err, err, *new(T))
	}
}

// TestRotation runs the four steps of a Secrets Manager rotation the way a
// rotation function does them, against the SDK.
func TestRotation(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()

	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("db/password"), ClientRequestToken: aws.String(tok0), SecretString: aws.String("v0"),
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if got := aws.ToString(created.VersionId); got != tok0 {
		t.Errorf("CreateSecret VersionId = %q, want the token %q", got, tok0)
	}
	if arn := aws.ToString(created.ARN); !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/password-") || len(arn) != len("arn:aws:secretsmanager:us-east-1:123456789012:secret:db/password-AbCdEf") {
		t.Errorf("CreateSecret ARN = %q, want the name followed by six random characters", arn)
	}
	id := aws.ToString(created.ARN)

	// createSecret: the new value goes to AWSPENDING, AWSCURRENT stays.
	put := &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(id), ClientRequestToken: aws.String(tok1), SecretString: aws.String("v1"),
		VersionStages: []string{"AWSPENDING"},
	}
	out, err := c.PutSecretValue(ctx, put)
	if err != nil {
		t.Fatalf("PutSecretValue AWSPENDING: %v", err)
	}
	if diff := cmp.Diff([]string{"AWSPENDING"}, out.VersionStages); diff != "" {
		t.Errorf("PutSecretValue VersionStages (-want +got):\n%s", diff)
	}
	afterPut := map[string][]string{tok0: {"AWSCURRENT"}, tok1: {"AWSPENDING"}}
	if diff := cmp.Diff(afterPut, stages(t, c, id)); diff != "" {
		t.Errorf("stages after createSecret (-want +got):\n%s", diff)
	}

	// A rotation function retried with the same token and value: no change.
	if out, err := c.PutSecretValue(ctx, put); err != nil {
		t.Errorf("PutSecretValue retried with the same token and value: %v", err)
	} else if aws.ToString(out.VersionId) != tok1 {
		t.Errorf("retried PutSecretValue VersionId = %q, want %q", aws.ToString(out.VersionId), tok1)
	}
	// ...even when the retry names other labels: the version exists.
	retry := *put
	retry.VersionStages = []string{"AWSCURRENT"}
	if _, err := c.PutSecretValue(ctx, &retry); err != nil {
		t.Errorf("PutSecretValue retried with other labels: %v", err)
	}
	if diff := cmp.Diff(afterPut, stages(t, c, id)); diff != "" {
		t.Errorf("stages after retries (-want +got):\n%s", diff)
	}
	versions, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		t.Fatalf("ListSecretVersionIds: %v", err)
	}
	if n := len(versions.Versions); n != 2 {
		t.Errorf("%d versions after retries, want 2", n)
	}

	// The same token with another value would modify a version.
	conflict := *put
	conflict.SecretString = aws.String("something else")
	_, err = c.PutSecretValue(ctx, &conflict)
	mustBe[*types.ResourceExistsException](t, "PutSecretValue with a used token and another value", err)

	// setSecret/testSecret read the pending value.
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionStage: aws.String("AWSPENDING")}); got != "v1" {
		t.Errorf("AWSPENDING value = %q, want v1", got)
	}

	// finishSecret: moving AWSCURRENT needs the version that has it.
	_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok1),
	})
	mustBe[*types.InvalidParameterException](t, "moving AWSCURRENT without RemoveFromVersionId", err)
	_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok1), RemoveFromVersionId: aws.String(tok1),
	})
	mustBe[*types.InvalidParameterException](t, "moving AWSCURRENT with the wrong RemoveFromVersionId", err)
	if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok1), RemoveFromVersionId: aws.String(tok0),
	}); err != nil {
		t.Fatalf("moving AWSCURRENT: %v", err)
	}
	want := map[string][]string{tok0: {"AWSPREVIOUS"}, tok1: {"AWSCURRENT", "AWSPENDING"}}
	if diff := cmp.Diff(want, stages(t, c, id)); diff != "" {
		t.Errorf("stages after moving AWSCURRENT (-want +got):\n%s", diff)
	}

	// Clearing AWSPENDING only detaches it.
	if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(id), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(tok1),
	}); err != nil {
		t.Fatalf("removing AWSPENDING: %v", err)
	}
	want = map[string][]string{tok0: {"AWSPREVIOUS"}, tok1: {"AWSCURRENT"}}
	if diff := cmp.Diff(want, stages(t, c, id)); diff != "" {
		t.Errorf("stages after removing AWSPENDING (-want +got):\n%s", diff)
	}
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}); got != "v1" {
		t.Errorf("current value = %q, want v1", got)
	}
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionStage: aws.String("AWSPREVIOUS")}); got != "v0" {
		t.Errorf("previous value = %q, want v0", got)
	}

	// Rolling back is moving AWSCURRENT to the AWSPREVIOUS version, which
	// swaps the two labels.
	if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok0), RemoveFromVersionId: aws.String(tok1),
	}); err != nil {
		t.Fatalf("rolling back: %v", err)
	}
	want = map[string][]string{tok0: {"AWSCURRENT"}, tok1: {"AWSPREVIOUS"}}
	if diff := cmp.Diff(want, stages(t, c, id)); diff != "" {
		t.Errorf("stages after rollback (-want +got):\n%s", diff)
	}
}

// TestPreviousFollowsCurrent puts three values after the first and checks
// that AWSPREVIOUS is always on the one version AWSCURRENT just left, the
// older versions losing every label (deprecated, listed only on request).
func TestPreviousFollowsCurrent(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()

	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("api-key"), SecretString: aws.String("v0")}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	var ids []string
	for i := 1; i <= 3; i++ {
		out, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("api-key"), SecretString: aws.String(fmt.Sprintf("v%d", i))})
		if err != nil {
			t.Fatalf("PutSecretValue %d: %v", i, err)
		}
		if diff := cmp.Diff([]string{"AWSCURRENT"}, out.VersionStages); diff != "" {
			t.Errorf("PutSecretValue %d VersionStages (-want +got):\n%s", i, diff)
		}
		ids = append(ids, aws.ToString(out.VersionId))
	}
	want := map[string][]string{ids[1]: {"AWSPREVIOUS"}, ids[2]: {"AWSCURRENT"}}
	if diff := cmp.Diff(want, stages(t, c, "api-key")); diff != "" {
		t.Errorf("stages after three puts (-want +got):\n%s", diff)
	}
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("api-key"), VersionStage: aws.String("AWSPREVIOUS")}); got != "v2" {
		t.Errorf("AWSPREVIOUS value = %q, want v2", got)
	}
	// A deprecated version is still readable by its ID, with no labels.
	old, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("api-key"), VersionId: aws.String(ids[0])})
	if err != nil {
		t.Fatalf("GetSecretValue of a deprecated version: %v", err)
	}
	if aws.ToString(old.SecretString) != "v1" || len(old.VersionStages) != 0 {
		t.Errorf("deprecated version = %q with labels %v, want v1 with none", aws.ToString(old.SecretString), old.VersionStages)
	}

	for _, tc := range []struct {
		deprecated bool
		want       int
	}{{false, 2}, {true, 4}} {
		// Pages of one, to go through NextToken.
		p := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{
			SecretId: aws.String("api-key"), IncludeDeprecated: aws.Bool(tc.deprecated), MaxResults: aws.Int32(1),
		})
		var got []string
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListSecretVersionIds(IncludeDeprecated=%t): %v", tc.deprecated, err)
			}
			for _, v := range page.Versions {
				got = append(got, aws.ToString(v.VersionId))
			}
		}
		if len(got) != tc.want || len(slices.Compact(slices.Sorted(slices.Values(got)))) != tc.want {
			t.Errorf("ListSecretVersionIds(IncludeDeprecated=%t) = %v, want %d distinct versions", tc.deprecated, got, tc.want)
		}
	}
}

// TestPutWithStages checks labels named in PutSecretValue: they move to
// the new version, AWSCURRENT brings AWSPREVIOUS along, and the first
// version of a secret created without a value is AWSCURRENT regardless.
func TestPutWithStages(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()

	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("empty")}); err != nil {
		t.Fatalf("CreateSecret without a value: %v", err)
	}
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("empty")})
	mustBe[*types.ResourceNotFoundException](t, "GetSecretValue of a secret without a value", err)

	put := func(tok, value string, labels ...string) {
		t.Helper()
		if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String("empty"), ClientRequestToken: aws.String(tok), SecretString: aws.String(value), VersionStages: labels,
		}); err != nil {
			t.Fatalf("PutSecretValue(%s, %v): %v", value, labels, err)
		}
	}
	put(tok0, "v0", "blue")
	if diff := cmp.Diff(map[string][]string{tok0: {"AWSCURRENT", "blue"}}, stages(t, c, "empty")); diff != "" {
		t.Errorf("stages after the first put (-want +got):\n%s", diff)
	}
	put(tok1, "v1", "blue", "green")
	want := map[string][]string{tok0: {"AWSCURRENT"}, tok1: {"blue", "green"}}
	if diff := cmp.Diff(want, stages(t, c, "empty")); diff != "" {
		t.Errorf("stages after moving blue (-want +got):\n%s", diff)
	}
	put(tok2, "v2", "AWSCURRENT", "green")
	want = map[string][]string{tok0: {"AWSPREVIOUS"}, tok1: {"blue"}, tok2: {"AWSCURRENT", "green"}}
	if diff := cmp.Diff(want, stages(t, c, "empty")); diff != "" {
		t.Errorf("stages after moving AWSCURRENT and green (-want +got):\n%s", diff)
	}
}

// TestIdentifiers reads one secret by name, ARN and partial ARN (the ARN
// without its random suffix), and checks the binary round trip.
func TestIdentifiers(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()

	blob := []byte{0, 1, 2, 0xff, 'k', 'e', 'y'}
	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("tls/key"), SecretBinary: blob, Description: aws.String("the key"),
		Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("kir")}},
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	arn := aws.ToString(created.ARN)
	for _, id := range []string{"tls/key", arn, arn[:len(arn)-7]} {
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Errorf("GetSecretValue(%s): %v", id, err)
			continue
		}
		if diff := cmp.Diff(blob, out.SecretBinary); diff != "" || out.SecretString != nil {
			t.Errorf("GetSecretValue(%s) binary (-want +got):\n%s (string %v)", id, diff, out.SecretString)
		}
		if aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "tls/key" || out.CreatedDate == nil {
			t.Errorf("GetSecretValue(%s) = ARN %q, Name %q, CreatedDate %v", id, aws.ToString(out.ARN), aws.ToString(out.Name), out.CreatedDate)
		}
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	if aws.ToString(d.Name) != "tls/key" || aws.ToString(d.Description) != "the key" || len(d.Tags) != 1 ||
		d.CreatedDate == nil || d.LastChangedDate == nil || d.LastAccessedDate == nil || d.DeletedDate != nil {
		t.Errorf("DescribeSecret = %+v", d)
	}
	if since := time.Since(*d.CreatedDate); since < 0 || since > time.Minute {
		t.Errorf("CreatedDate %v is not now", d.CreatedDate)
	}
}

// TestCreateIdempotency: CreateSecret retried with its token and value
// succeeds as the same secret; anything else on an existing name fails.
func TestCreateIdempotency(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()

	in := &secretsmanager.CreateSecretInput{Name: aws.String("s"), ClientRequestToken: aws.String(tok0), SecretString: aws.String("v")}
	first, err := c.CreateSecret(ctx, in)
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	again, err := c.CreateSecret(ctx, in)
	if err != nil {
		t.Fatalf("CreateSecret retried: %v", err)
	}
	if aws.ToString(again.ARN) != aws.ToString(first.ARN) || aws.ToString(again.VersionId) != tok0 {
		t.Errorf("retried CreateSecret = %s %s, want %s %s", aws.ToString(again.ARN), aws.ToString(again.VersionId), aws.ToString(first.ARN), tok0)
	}
	other := *in
	other.SecretString = aws.String("w")
	_, err = c.CreateSecret(ctx, &other)
	mustBe[*types.ResourceExistsException](t, "CreateSecret with the same token and another value", err)
	other = *in
	other.ClientRequestToken = aws.String(tok1)
	_, err = c.CreateSecret(ctx, &other)
	mustBe[*types.ResourceExistsException](t, "CreateSecret of an existing name", err)
}

// TestErrors checks that each refusal reaches the caller as the SDK's typed
// error.
func TestErrors(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()
	live, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("live"), ClientRequestToken: aws.String(tok0), SecretString: aws.String("v")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("doomed"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("doomed"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}

	notFound := isA[*types.ResourceNotFoundException]
	invalidParam := isA[*types.InvalidParameterException]
	invalidReq := isA[*types.InvalidRequestException]
	for _, tc := range []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"get missing secret", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
			return err
		}, notFound},
		{"describe missing secret", func() error {
			_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")})
			return err
		}, notFound},
		{"put to missing secret", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("nope"), SecretString: aws.String("v")})
			return err
		}, notFound},
		{"list versions of missing secret", func() error {
			_, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("nope")})
			return err
		}, notFound},
		{"delete missing secret", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("nope")})
			return err
		}, notFound},
		{"get missing version", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("live"), VersionId: aws.String(tok1)})
			return err
		}, notFound},
		{"get missing label", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("live"), VersionStage: aws.String("AWSPENDING")})
			return err
		}, notFound},
		{"get version by a label it lacks", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("live"), VersionId: aws.String(tok0), VersionStage: aws.String("AWSPREVIOUS")})
			return err
		}, notFound},
		{"string and binary", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("live"), SecretString: aws.String("v"), SecretBinary: []byte("v")})
			return err
		}, invalidParam},
		{"move to a version that does not exist", func() error {
			_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("live"), VersionStage: aws.String("AWSPENDING"), MoveToVersionId: aws.String(tok1)})
			return err
		}, invalidParam},
		{"remove a label from a version without it", func() error {
			_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("live"), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(tok0)})
			return err
		}, invalidParam},
		{"delete with both force and window", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("live"), ForceDeleteWithoutRecovery: aws.Bool(true), RecoveryWindowInDays: aws.Int64(7)})
			return err
		}, invalidParam},
		{"recovery window too short", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("live"), RecoveryWindowInDays: aws.Int64(6)})
			return err
		}, invalidParam},
		{"get secret scheduled for deletion", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("doomed")})
			return err
		}, invalidReq},
		{"put to secret scheduled for deletion", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("doomed"), SecretString: aws.String("v")})
			return err
		}, invalidReq},
		{"create over secret scheduled for deletion", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("doomed"), SecretString: aws.String("v")})
			return err
		}, invalidReq},
		{"delete twice", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("doomed")})
			return err
		}, invalidReq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !tc.want(err) {
				t.Errorf("got %v (%T)", err, err)
			}
		})
	}
	// None of the refusals changed anything.
	if diff := cmp.Diff(map[string][]string{tok0: {"AWSCURRENT"}}, stages(t, c, aws.ToString(live.ARN))); diff != "" {
		t.Errorf("stages of live after the refusals (-want +got):\n%s", diff)
	}
}

// TestDeleteRestore: a scheduled deletion can be undone; a forced one is
// immediate and frees the name; forcing the deletion of a secret that does
// not exist succeeds, as the API reference says.
func TestDeleteRestore(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx := t.Context()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("s"), RecoveryWindowInDays: aws.Int64(7)})
	if err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if until := time.Until(aws.ToTime(del.DeletionDate)); until < 6*24*time.Hour || until > 7*24*time.Hour {
		t.Errorf("DeletionDate %v is not 7 days from now", del.DeletionDate)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("s")})
	if err != nil {
		t.Fatalf("DescribeSecret of a secret scheduled for deletion: %v", err)
	}
	if d.DeletedDate == nil {
		t.Errorf("DescribeSecret of a secret scheduled for deletion has no DeletedDate")
	}
	if _, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("s")}); err != nil {
		t.Fatalf("RestoreSecret: %v", err)
	}
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); got != "v" {
		t.Errorf("value after restore = %q, want v", got)
	}

	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("s"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatalf("DeleteSecret forced: %v", err)
	}
	_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("s")})
	mustBe[*types.ResourceNotFoundException](t, "DescribeSecret after a forced delete", err)
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("w")}); err != nil {
		t.Errorf("CreateSecret of a name freed by a forced delete: %v", err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("never-was"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Errorf("forced DeleteSecret of a missing secret: %v", err)
	}
}

// TestFail injects faults: an AWS error reaches the caller typed; a plain
// error is an InternalServiceError the SDK retries past.
func TestFail(t *testing.T) {
	t.Parallel()
	srv, c := newClient(t)
	ctx := t.Context()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}

	srv.Fail("GetSecretValue", &smserver.APIError{Code: smserver.CodeResourceNotFound, Message: "injected"})
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	mustBe[*types.ResourceNotFoundException](t, "GetSecretValue with an injected fault", err)
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); got != "v" {
		t.Errorf("value after the fault = %q, want v", got)
	}

	srv.Fail("PutSecretValue", errors.New("disk on fire"))
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String("w")}); err != nil {
		t.Errorf("PutSecretValue after one InternalServiceError should succeed on retry: %v", err)
	}
	for range 3 { // the standard retryer's attempts
		srv.Fail("PutSecretValue", errors.New("disk on fire"))
	}
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String("x")})
	mustBe[*types.InternalServiceError](t, "PutSecretValue failing on every attempt", err)

	want := map[string]int{"CreateSecret": 1, "GetSecretValue": 2, "PutSecretValue": 5}
	if diff := cmp.Diff(want, srv.Calls()); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
	// The failed puts stored nothing: two versions, v and w.
	if got := getValue(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); got != "w" {
		t.Errorf("value = %q, want w", got)
	}
	if n := len(stages(t, c, "s")); n != 2 {
		t.Errorf("%d labelled versions, want 2", n)
	}

	for _, bad := range []struct {
		op  string
		err error
	}{{"NoSuchOperation", errors.New("x")}, {"GetSecretValue", nil}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Fail(%q, %v) did not panic", bad.op, bad.err)
				}
			}()
			srv.Fail(bad.op, bad.err)
		}()
	}
}

// TestConcurrentPuts: puts racing on one secret leave every version and
// exactly one AWSCURRENT and one AWSPREVIOUS.
func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String(fmt.Sprint(i))})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("PutSecretValue: %v", err)
		}
	}
	got := stages(t, c, "s")
	labels := slices.Sorted(func(yield func(string) bool) {
		for _, ls := range got {
			for _, l := range ls {
				if !yield(l) {
					return
				}
			}
		}
	})
	if diff := cmp.Diff([]string{"AWSCURRENT", "AWSPREVIOUS"}, labels); diff != "" {
		t.Errorf("labels after concurrent puts (-want +got):\n%s\nstages: %v", diff, slices.Collect(maps.Keys(got)))
	}
	all, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Versions) != n+1 {
		t.Errorf("%d versions, want %d", len(all.Versions), n+1)
	}
}
