package rotate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// Secrets Manager's staging labels.
const (
	stageCurrent  = "AWSCURRENT"
	stagePending  = "AWSPENDING"
	stagePrevious = "AWSPREVIOUS"
)

// AWSOptions say how to reach Secrets Manager beyond the standard AWS
// configuration chain (environment, shared profile, web identity / IRSA).
type AWSOptions struct {
	// EndpointURL is a compatible server's URL; "" means AWS's.
	EndpointURL string
	// Region overrides the configured region.
	Region string
}

// NewSecretsManager returns a client from the standard AWS configuration.
func NewSecretsManager(ctx context.Context, o AWSOptions) (*sm.Client, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	return sm.NewFromConfig(cfg, func(so *sm.Options) {
		if o.EndpointURL != "" {
			so.BaseEndpoint = aws.String(o.EndpointURL)
		}
	}), nil
}

// tokenFor is the ClientRequestToken of a rotation: the same for every
// attempt, so that Secrets Manager itself makes the new version's creation
// idempotent, and shaped as a UUID (32 to 64 characters).
func tokenFor(rotation string) string {
	s := sha256.Sum256([]byte("kir rotation " + rotation))
	h := hex.EncodeToString(s[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// awsSecret is one Secrets Manager secret.
type awsSecret struct {
	c   *sm.Client
	ref Ref
}

// stages returns the secret's versions and their staging labels.
func (s awsSecret) stages(ctx context.Context) (map[string][]string, error) {
	out, err := s.c.DescribeSecret(ctx, &sm.DescribeSecretInput{SecretId: aws.String(s.ref.Name)})
	if err != nil {
		return nil, s.wrap("describing", err)
	}
	return out.VersionIdsToStages, nil
}

// holder returns the version that has label, or "".
func holder(stages map[string][]string, label string) string {
	for v, labels := range stages {
		if slices.Contains(labels, label) {
			return v
		}
	}
	return ""
}

// value returns a version's SecretString and id; version "" means AWSCURRENT.
func (s awsSecret) value(ctx context.Context, version string) (string, string, error) {
	in := &sm.GetSecretValueInput{SecretId: aws.String(s.ref.Name)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := s.c.GetSecretValue(ctx, in)
	if err != nil {
		return "", "", s.wrap("reading", err)
	}
	if out.SecretString == nil {
		return "", "", fmt.Errorf("%s holds a binary value: kir rotates string values only", s.ref)
	}
	return *out.SecretString, aws.ToString(out.VersionId), nil
}

// putPending creates the version token labelled AWSPENDING.
func (s awsSecret) putPending(ctx context.Context, token, value string) error {
	_, err := s.c.PutSecretValue(ctx, &sm.PutSecretValueInput{
		SecretId: aws.String(s.ref.Name), ClientRequestToken: aws.String(token),
		SecretString: aws.String(value), VersionStages: []string{stagePending},
	})
	return s.wrap("writing the pending version of", err)
}

// create creates the secret with its first version, token, current.
func (s awsSecret) create(ctx context.Context, token, value string) error {
	_, err := s.c.CreateSecret(ctx, &sm.CreateSecretInput{
		Name: aws.String(s.ref.Name), ClientRequestToken: aws.String(token), SecretString: aws.String(value),
		Description: aws.String("Created by kir"),
	})
	// Secrets Manager answers an earlier attempt's creation with the same
	// token and value as a success.
	return s.wrap("creating", err)
}

// move moves label to version to (from the version from; "" when no
// version has it), or removes it from from when to is "".
func (s awsSecret) move(ctx context.Context, label, to, from string) error {
	in := &sm.UpdateSecretVersionStageInput{SecretId: aws.String(s.ref.Name), VersionStage: aws.String(label)}
	if to != "" {
		in.MoveToVersionId = aws.String(to)
	}
	if from != "" {
		in.RemoveFromVersionId = aws.String(from)
	}
	_, err := s.c.UpdateSecretVersionStage(ctx, in)
	return s.wrap("moving "+label+" of", err)
}

func (s awsSecret) wrap(doing string, err error) error {
	if err == nil {
		return nil
	}
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return &errNotFound{what: s.ref.String()}
	}
	return fmt.Errorf("%s %s: %w", doing, s.ref, err)
}
