// Package smserver is an in-memory server that speaks the AWS Secrets
// Manager protocol, so that kir's tests can drive the real AWS SDK for Go v2
// against it without an AWS account or an emulator binary.
//
// It speaks awsJson1.1 as the SDK does: every call is a POST to "/" with
// the header "X-Amz-Target: secretsmanager.<Operation>" and a JSON body, and
// an error is an HTTP 400 (500 for InternalServiceError) whose code is in
// both the "X-Amzn-ErrorType" header and the body's "__type", which is what
// the SDK reads to hand back its typed errors (*types.ResourceNotFoundException
// and the rest). Requests may be signed with any credentials; signatures are
// not checked.
//
// It implements CreateSecret, PutSecretValue, GetSecretValue,
// DescribeSecret, ListSecretVersionIds, UpdateSecretVersionStage,
// DeleteSecret and RestoreSecret, with staging labels and ClientRequestToken
// idempotency as the Secrets Manager API reference documents them:
//
//   - a staging label is on at most one version of a secret;
//   - whenever AWSCURRENT moves, AWSPREVIOUS moves to the version AWSCURRENT
//     left, so at most one version is ever AWSPREVIOUS;
//   - a version without labels is deprecated: it can still be read by its
//     VersionId but is listed only with IncludeDeprecated;
//   - a ClientRequestToken is the VersionId of the version it creates, and
//     repeating it with the same value changes nothing while repeating it
//     with another value fails with ResourceExistsException.
//
// Unlike AWS, it never prunes deprecated versions (AWS keeps every version
// younger than 24 hours, which covers any test), and it rejects request
// fields it does not implement instead of ignoring them, so that a test
// never passes on behaviour the server only pretends to have.
//
// The server keeps secret values in memory only and never logs them.
package smserver
