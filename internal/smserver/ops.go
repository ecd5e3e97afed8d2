package smserver

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Constraints from the Secrets Manager model. AWS checks them before the
// operation runs and answers ValidationException.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

const (
	minTokenLen, maxTokenLen = 32, 64
	maxStageLen              = 256
	maxStagesPerVersion      = 20
	maxListResults           = 100
)

func errValidation(member, constraint string) *APIError {
	return errorf(CodeValidation, "1 validation error detected: Value at '%s' failed to satisfy constraint: %s", member, constraint)
}

func checkSecretID(id string) *APIError {
	if id == "" {
		return errValidation("secretId", "Member must not be null")
	}
	return nil
}

func checkToken(tok string) *APIError {
	if tok != "" && (len(tok) < minTokenLen || len(tok) > maxTokenLen) {
		return errValidation("clientRequestToken", fmt.Sprintf("Member must have length between %d and %d", minTokenLen, maxTokenLen))
	}
	return nil
}

func checkStage(member, stage string) *APIError {
	if stage == "" || len(stage) > maxStageLen {
		return errValidation(member, fmt.Sprintf("Member must have length between 1 and %d", maxStageLen))
	}
	return nil
}

// checkValue enforces "SecretString or SecretBinary, not both"; a secret
// may be created without either.
func checkValue(str *string, bin []byte, required bool) *APIError {
	switch {
	case str != nil && bin != nil:
		return errorf(CodeInvalidParameter, "You can't specify both a binary secret value and a string secret value in the same secret.")
	case required && str == nil && bin == nil:
		return errorf(CodeInvalidParameter, "You must provide either SecretString or SecretBinary.")
	}
	return nil
}

// lookup finds a secret, live or scheduled for deletion, by name, by ARN,
// or by partial ARN (the ARN without the six random characters).
func (s *Server) lookup(id string) *secret {
	if sec, ok := s.secrets[id]; ok {
		return sec
	}
	if !strings.HasPrefix(id, "arn:") {
		return nil
	}
	for _, sec := range s.secrets {
		if sec.arn == id || strings.TrimSuffix(sec.arn, sec.arn[len(sec.arn)-7:]) == id {
			return sec
		}
	}
	return nil
}

// live finds a secret that is not scheduled for deletion: AWS refuses to
// read or change those until RestoreSecret.
func (s *Server) live(id string) (*secret, *APIError) {
	if err := checkSecretID(id); err != nil {
		return nil, err
	}
	sec := s.lookup(id)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	if !sec.deleted.IsZero() {
		return nil, errMarkedForDeletion()
	}
	return sec, nil
}

func (s *Server) createSecret(in *createSecretInput) (*createSecretOutput, *APIError) {
	if !namePattern.MatchString(in.Name) {
		return nil, errorf(CodeInvalidParameter, "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if err := checkToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary, false); err != nil {
		return nil, err
	}
	hasValue := in.SecretString != nil || in.SecretBinary != nil
	if sec, ok := s.secrets[in.Name]; ok {
		if !sec.deleted.IsZero() {
			return nil, errorf(CodeInvalidRequest, "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		// A retry of the call that created the secret (the SDK retries
		// with the same token) is ignored, as the API reference says of a
		// token that names a version holding the same value.
		if v := sec.versions[in.ClientRequestToken]; hasValue && v != nil && v.sameValue(in.SecretString, in.SecretBinary) {
			return &createSecretOutput{ARN: sec.arn, Name: sec.name, VersionId: v.id}, nil
		}
		return nil, errorf(CodeResourceExists, "The operation failed because the secret %s already exists.", in.Name)
	}
	now := s.now()
	sec := &secret{
		name:     in.Name,
		arn:      fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.region, s.account, in.Name, arnSuffix()),
		kmsKeyID: in.KmsKeyId,
		tags:     slices.Clone(in.Tags),
		created:  now,
		changed:  now,
		versions: make(map[string]*version),
	}
	if in.Description != nil {
		sec.description = *in.Description
	}
	out := &createSecretOutput{ARN: sec.arn, Name: sec.name}
	if hasValue {
		id := in.ClientRequestToken
		if id == "" {
			id = newUUID()
		}
		v := sec.addVersion(id, in.SecretString, in.SecretBinary, now)
		sec.attach(stageCurrent, v)
		out.VersionId = id
	}
	s.secrets[sec.name] = sec
	return out, nil
}

func (s *Server) putSecretValue(in *putSecretValueInput) (*putSecretValueOutput, *APIError) {
	if err := checkToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if err := checkValue(in.SecretString, in.SecretBinary, true); err != nil {
		return nil, err
	}
	for _, st := range in.VersionStages {
		if err := checkStage("versionStages", st); err != nil {
			return nil, err
		}
	}
	sec, err := s.live(in.SecretId)
	if err != nil {
		return nil, err
	}
	if v := sec.versions[in.ClientRequestToken]; v != nil {
		// A repeated token: the same value is a retry and changes
		// nothing, labels included; another value would modify a
		// version, which Secrets Manager never does.
		if !v.sameValue(in.SecretString, in.SecretBinary) {
			return nil, errorf(CodeResourceExists, "You can't modify an existing version, you can only create a new version.")
		}
		return &putSecretValueOutput{ARN: sec.arn, Name: sec.name, VersionId: v.id, VersionStages: stagesOf(v)}, nil
	}
	stages := in.VersionStages
	if stages == nil {
		stages = []string{stageCurrent}
	}
	if len(sec.versions) == 0 && !slices.Contains(stages, stageCurrent) {
		// The first version of a secret is always AWSCURRENT.
		stages = append([]string{stageCurrent}, stages...)
	}
	stages = slices.Compact(slices.Sorted(slices.Values(stages)))
	if len(stages) > maxStagesPerVersion {
		return nil, errorf(CodeLimitExceeded, "A version can have at most %d staging labels.", maxStagesPerVersion)
	}
	id := in.ClientRequestToken
	if id == "" {
		id = newUUID()
	}
	now := s.now()
	v := sec.addVersion(id, in.SecretString, in.SecretBinary, now)
	// AWSCURRENT first: moving it puts AWSPREVIOUS on the old current
	// version, and an AWSPREVIOUS named in the request must win over that.
	if slices.Contains(stages, stageCurrent) {
		sec.attach(stageCurrent, v)
	}
	for _, st := range stages {
		if st != stageCurrent {
			sec.attach(st, v)
		}
	}
	sec.changed = now
	return &putSecretValueOutput{ARN: sec.arn, Name: sec.name, VersionId: v.id, VersionStages: stagesOf(v)}, nil
}

func (s *Server) getSecretValue(in *getSecretValueInput) (*getSecretValueOutput, *APIError) {
	sec, err := s.live(in.SecretId)
	if err != nil {
		return nil, err
	}
	var v *version
	switch {
	case in.VersionId != "":
		v = sec.versions[in.VersionId]
		if v == nil {
			return nil, errorf(CodeResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s", in.VersionId)
		}
		if in.VersionStage != "" && !v.has(in.VersionStage) {
			return nil, errorf(CodeResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s and staging label: %s", in.VersionId, in.VersionStage)
		}
	default:
		stage := in.VersionStage
		if stage == "" {
			stage = stageCurrent
		}
		v = sec.holder(stage)
		if v == nil {
			return nil, errorf(CodeResourceNotFound, "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	// AWS records last access by the day only.
	today := s.now().UTC().Truncate(24 * time.Hour)
	sec.accessed, v.accessed = today, today
	return &getSecretValueOutput{
		ARN:           sec.arn,
		Name:          sec.name,
		VersionId:     v.id,
		SecretString:  v.str,
		SecretBinary:  v.bin,
		VersionStages: stagesOf(v),
		CreatedDate:   epoch(v.created),
	}, nil
}

func (s *Server) describeSecret(in *secretIDInput) (*describeSecretOutput, *APIError) {
	if err := checkSecretID(in.SecretId); err != nil {
		return nil, err
	}
	sec := s.lookup(in.SecretId)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	return &describeSecretOutput{
		ARN:                sec.arn,
		Name:               sec.name,
		Description:        sec.description,
		KmsKeyId:           sec.kmsKeyID,
		CreatedDate:        epoch(sec.created),
		LastChangedDate:    epoch(sec.changed),
		LastAccessedDate:   epoch(sec.accessed),
		DeletedDate:        epoch(sec.deleted),
		Tags:               slices.Clone(sec.tags),
		VersionIdsToStages: sec.labelled(),
	}, nil
}

func (s *Server) listSecretVersionIds(in *listSecretVersionIdsInput) (*listSecretVersionIdsOutput, *APIError) {
	if err := checkSecretID(in.SecretId); err != nil {
		return nil, err
	}
	limit := maxListResults
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxListResults {
			return nil, errValidation("maxResults", fmt.Sprintf("Member must have value between 1 and %d", maxListResults))
		}
		limit = int(*in.MaxResults)
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 {
			return nil, errorf(CodeInvalidNextToken, "The NextToken value is invalid.")
		}
		start = n
	}
	sec := s.lookup(in.SecretId)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	var ids []string
	for _, id := range sec.order {
		if in.IncludeDeprecated || len(sec.versions[id].stages) > 0 {
			ids = append(ids, id)
		}
	}
	if start > len(ids) {
		return nil, errorf(CodeInvalidNextToken, "The NextToken value is invalid.")
	}
	out := &listSecretVersionIdsOutput{ARN: sec.arn, Name: sec.name, Versions: []versionEntry{}}
	end := min(start+limit, len(ids))
	for _, id := range ids[start:end] {
		v := sec.versions[id]
		out.Versions = append(out.Versions, versionEntry{
			VersionId:        v.id,
			VersionStages:    stagesOf(v),
			CreatedDate:      epoch(v.created),
			LastAccessedDate: epoch(v.accessed),
		})
	}
	if end < len(ids) {
		out.NextToken = strconv.Itoa(end)
	}
	return out, nil
}

// updateSecretVersionStage moves or removes one label. The API reference's
// rule: when the label is on a version other than MoveToVersionId,
// RemoveFromVersionId must name that version, or the call fails.
func (s *Server) updateSecretVersionStage(in *updateSecretVersionStageInput) (*arnNameOutput, *APIError) {
	if err := checkStage("versionStage", in.VersionStage); err != nil {
		return nil, err
	}
	sec, err := s.live(in.SecretId)
	if err != nil {
		return nil, err
	}
	stage, to, from := in.VersionStage, in.MoveToVersionId, in.RemoveFromVersionId
	if to == "" && from == "" {
		return nil, errorf(CodeInvalidParameter, "You must specify MoveToVersionId, RemoveFromVersionId, or both.")
	}
	for _, id := range []string{to, from} {
		if id != "" && sec.versions[id] == nil {
			return nil, errorf(CodeInvalidParameter, "Not a valid version: %s", id)
		}
	}
	h := sec.holder(stage)
	switch {
	case from != "" && (h == nil || h.id != from):
		return nil, errorf(CodeInvalidParameter, "Staging label %s is not attached to version %s; RemoveFromVersionId must be set to the version that currently has the staging label.", stage, from)
	case to != "" && from == "" && h != nil && h.id != to:
		return nil, errorf(CodeInvalidParameter, "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", stage, h.id)
	}
	if to == "" {
		// Removing only: the label leaves the version and goes nowhere.
		// This is not a move, so even for AWSCURRENT AWSPREVIOUS stays put.
		h.detach(stage)
	} else {
		v := sec.versions[to]
		if !v.has(stage) && len(v.stages) >= maxStagesPerVersion {
			return nil, errorf(CodeLimitExceeded, "A version can have at most %d staging labels.", maxStagesPerVersion)
		}
		sec.attach(stage, v)
	}
	sec.changed = s.now()
	return &arnNameOutput{ARN: sec.arn, Name: sec.name}, nil
}

func (s *Server) deleteSecret(in *deleteSecretInput) (*deleteSecretOutput, *APIError) {
	if err := checkSecretID(in.SecretId); err != nil {
		return nil, err
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		if force {
			return nil, errorf(CodeInvalidParameter, "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
		}
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, errorf(CodeInvalidParameter, "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	now := s.now()
	sec := s.lookup(in.SecretId)
	switch {
	case sec == nil && force:
		// The API reference: forcibly deleting a secret that does not
		// exist does not return ResourceNotFoundException.
		out := &deleteSecretOutput{DeletionDate: epoch(now)}
		if strings.HasPrefix(in.SecretId, "arn:") {
			out.ARN = in.SecretId
		} else {
			out.Name = in.SecretId
		}
		return out, nil
	case sec == nil:
		return nil, errSecretNotFound()
	case force:
		delete(s.secrets, sec.name)
		return &deleteSecretOutput{ARN: sec.arn, Name: sec.name, DeletionDate: epoch(now)}, nil
	case !sec.deleted.IsZero():
		return nil, errorf(CodeInvalidRequest, "You can't perform this operation on the secret because it was already scheduled for deletion.")
	}
	// DescribeSecret's DeletedDate is, in the API reference's words, "the
	// date the secret is scheduled for deletion": the end of the window.
	sec.deleted = now.Add(time.Duration(days) * 24 * time.Hour)
	sec.changed = now
	return &deleteSecretOutput{ARN: sec.arn, Name: sec.name, DeletionDate: epoch(sec.deleted)}, nil
}

func (s *Server) restoreSecret(in *secretIDInput) (*arnNameOutput, *APIError) {
	if err := checkSecretID(in.SecretId); err != nil {
		return nil, err
	}
	sec := s.lookup(in.SecretId)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	sec.deleted = time.Time{}
	sec.changed = s.now()
	return &arnNameOutput{ARN: sec.arn, Name: sec.name}, nil
}
