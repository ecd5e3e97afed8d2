package rotate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"kir.dev/kir/action"
)

// SecretParams name a secret and how to reach its store.
type SecretParams struct {
	Ref         string `json:"ref" kir:"required" doc:"The secret: vault://MOUNT/PATH[#KEY] or aws-sm://NAME[#KEY]."`
	Rotation    string `json:"rotation" kir:"required" doc:"The rotation's id (the run's): keys the fingerprints and Secrets Manager's ClientRequestToken."`
	EndpointURL string `json:"endpointURL,omitempty" doc:"Secrets Manager: a compatible server's URL instead of AWS's."`
	Region      string `json:"region,omitempty" doc:"Secrets Manager: the AWS region, instead of the configured one."`
}

func (p SecretParams) validate() error {
	var errs []error
	if _, err := ParseRef(p.Ref); err != nil {
		errs = append(errs, err)
	}
	if p.Rotation == "" {
		errs = append(errs, errors.New("rotation must not be empty"))
	}
	return errors.Join(errs...)
}

// IssueSecretParams are rotate.issue-secret's parameters.
type IssueSecretParams struct {
	SecretParams
	Length    int      `json:"length,omitempty" doc:"Length of a generated value (default 32)."`
	Alphabet  string   `json:"alphabet,omitempty" doc:"Characters of a generated value (default letters and digits)."`
	ValueFile string   `json:"valueFile,omitempty" doc:"Read the new value from this file instead of generating one. It is never copied anywhere but the store."`
	KeySpecs  []string `json:"keySpecs,omitempty" doc:"Per key: KEY=LENGTH[:ALPHABET] instead of length and alphabet for that key (each must be a key the rotation changes)."`
}

// Validate checks the parameters without I/O.
func (p IssueSecretParams) Validate() error {
	errs := []error{p.validate()}
	if p.Length < 0 {
		errs = append(errs, fmt.Errorf("length must not be negative, got %d", p.Length))
	}
	if _, err := ParseKeySpecs(p.KeySpecs); err != nil {
		errs = append(errs, err)
	}
	if p.ValueFile != "" && (p.Length != 0 || p.Alphabet != "" || len(p.KeySpecs) > 0) {
		errs = append(errs, errors.New("valueFile excludes length, alphabet and keySpecs"))
	}
	return errors.Join(errs...)
}

func (p IssueSecretParams) source() ValueSource {
	return ValueSource{Length: p.Length, Alphabet: p.Alphabet, File: p.ValueFile}
}

// SecretRotation is the record of one secret's rotation: what rollback
// needs, and nothing secret.
type SecretRotation struct {
	Ref   string `json:"ref"`
	Store string `json:"store"`
	// OldVersion was current before the rotation; NewVersion is the one
	// kir wrote (Vault: version numbers; Secrets Manager: version ids).
	OldVersion string `json:"oldVersion"`
	NewVersion string `json:"newVersion"`
	// Keys are the keys given new values ("" for a whole Secrets Manager
	// value).
	Keys []string `json:"keys"`
	// Fingerprint identifies the new data (see Fingerprint).
	Fingerprint string `json:"fingerprint"`
	// Current is true once NewVersion is the version readers get.
	Current bool `json:"current"`
}

// issueNote is what rotate.issue-secret notes in the journal before it
// acts: the version it read, then the fingerprint of what it writes.
type issueNote struct {
	Read  string `json:"read,omitempty"`
	Write string `json:"write,omitempty"`
}

func notesOf[T any](env action.Env) []T {
	out := make([]T, 0, len(env.Notes))
	for _, raw := range env.Notes {
		var n T
		if json.Unmarshal(raw, &n) == nil {
			out = append(out, n)
		}
	}
	return out
}

func note(env action.Env, data any) error {
	if env.Note == nil {
		return nil
	}
	return env.Note(data)
}

// IssueSecret writes a new value for a secret (or one key of it).
//
// Vault: a new KV v2 version, written with check-and-set against the version
// read, which makes it current. A mount or secret keeping fewer than 2
// versions is refused: the old value would be gone, and rollback with it.
//
// Secrets Manager: a new version labelled AWSPENDING, created with the
// rotation's ClientRequestToken (reused if it already exists); a leftover
// AWSPENDING of another rotation is removed first. rotate.finish-secret
// makes it current.
func (s Stores) IssueSecret(ctx context.Context, env action.Env, p IssueSecretParams) (action.Result, error) {
	ref, _ := ParseRef(p.Ref)             // valid: Validate ran
	specs, _ := ParseKeySpecs(p.KeySpecs) // valid: Validate ran
	nv := newValues{of: func(key string) (string, error) {
		if s, ok := specs[key]; ok {
			return s.New()
		}
		return p.source().New()
	}, one: p.ValueFile != ""}
	for k := range specs {
		nv.keys = append(nv.keys, k)
	}
	slices.Sort(nv.keys)
	return s.issue(ctx, env, ref, p.SecretParams, false, nv)
}

// newValues gives the new value of each key a rotation changes ("" for a
// whole Secrets Manager value). keys are keys the rotation must change:
// settings given for a key the secret lacks are an error, not ignored.
type newValues struct {
	of   func(key string) (string, error)
	keys []string
	// one: a single value (from a file) that must not land in several keys.
	one bool
}

// ParseKeySpecs parses KEY=LENGTH[:ALPHABET] entries (--key-spec).
func ParseKeySpecs(specs []string) (map[string]ValueSource, error) {
	out := map[string]ValueSource{}
	var errs []error
	for _, spec := range specs {
		key, rest, ok := strings.Cut(spec, "=")
		n, alphabet, _ := strings.Cut(rest, ":")
		length, err := strconv.Atoi(n)
		switch {
		case !ok || key == "":
			errs = append(errs, fmt.Errorf("keySpecs: %q is not KEY=LENGTH[:ALPHABET]", spec))
		case err != nil || length <= 0:
			errs = append(errs, fmt.Errorf("keySpecs: %q: the length must be a positive number", spec))
		case strings.Contains(rest, ":") && alphabet == "":
			errs = append(errs, fmt.Errorf("keySpecs: %q: the alphabet after ':' is empty", spec))
		default:
			if _, dup := out[key]; dup {
				errs = append(errs, fmt.Errorf("keySpecs: key %q is given twice", key))
			}
			out[key] = ValueSource{Length: length, Alphabet: alphabet}
		}
	}
	return out, errors.Join(errs...)
}

// issue is IssueSecret with the new value from newValue.
// A missing secret is created when create is set, and an error otherwise.
func (s Stores) issue(ctx context.Context, env action.Env, ref Ref, p SecretParams, create bool, nv newValues) (action.Result, error) {
	switch ref.Store {
	case StoreVault:
		c, err := NewVaultClient(ctx, s.Vault)
		if err != nil {
			return action.Result{}, err
		}
		return issueVault(ctx, env, vaultKV{c: c, ref: ref}, p.Rotation, create, nv)
	default:
		c, err := NewSecretsManager(ctx, AWSOptions{EndpointURL: p.EndpointURL, Region: p.Region})
		if err != nil {
			return action.Result{}, err
		}
		return issueAWS(ctx, env, awsSecret{c: c, ref: ref}, p.Rotation, create, nv)
	}
}

func issueVault(ctx context.Context, env action.Env, kv vaultKV, rotation string, create bool, nv newValues) (action.Result, error) {
	ref := kv.ref
	out := SecretRotation{Ref: ref.String(), Store: ref.Store}
	notes := notesOf[issueNote](env)
	read := -1
	var ours []string
	for _, n := range notes {
		if n.Read != "" && read < 0 {
			read, _ = strconv.Atoi(n.Read)
		}
		if n.Write != "" {
			ours = append(ours, n.Write)
		}
	}
	cur, data, err := kv.current(ctx)
	var nf *errNotFound
	if create && errors.As(err, &nf) {
		cur, data, err = 0, map[string]any{ref.Key: ""}, nil // version 0: check-and-set 0 creates
	}
	if err != nil {
		return action.Result{}, err
	}
	if read < 0 {
		// First attempt: refuse a store that would drop the old version,
		// then note the version this rotation starts from.
		max, err := kv.maxVersions(ctx)
		if err != nil {
			return action.Result{}, err
		}
		if max < 2 {
			return action.Result{}, fmt.Errorf("%s keeps %d version(s) (max_versions): rotating would destroy the current value and any rollback with it; raise max_versions to 2 or more", ref, max)
		}
		read = cur
		if err := note(env, issueNote{Read: strconv.Itoa(read)}); err != nil {
			return action.Result{}, err
		}
	}
	out.OldVersion, out.NewVersion = strconv.Itoa(read), strconv.Itoa(read+1)
	if cur > read {
		// Written since this rotation read the secret: by an earlier
		// attempt of it (its fingerprint was noted) or by someone else.
		next, err := kv.version(ctx, read+1)
		if err != nil {
			return action.Result{}, err
		}
		fp := Fingerprint(rotation, next)
		if !slices.Contains(ours, fp) {
			return action.Result{}, fmt.Errorf("%s: version %d was written by someone else after kir read version %d: %w; nothing overwritten", ref, read+1, read, ErrConcurrentWrite)
		}
		out.Keys, out.Fingerprint, out.Current = changedKeys(ref, next), fp, cur == read+1
		res := action.Result{Changed: true, Output: out}
		if cur > read+1 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: version %d, written after kir's version %d, is current", ref, cur, read+1))
		}
		return res, nil
	}
	next, keys, err := replaced(ref, data, nv)
	if err != nil {
		return action.Result{}, err
	}
	fp := Fingerprint(rotation, next)
	out.Keys, out.Fingerprint = keys, fp
	if !env.DryRun.Persists() {
		return action.Result{Changed: true, Output: out}, nil
	}
	if err := note(env, issueNote{Write: fp}); err != nil {
		return action.Result{}, err
	}
	if _, err := kv.put(ctx, next, read); err != nil {
		return action.Result{}, err
	}
	out.Current = true
	return action.Result{Changed: true, Output: out}, nil
}

// changedKeys lists the keys a rotation of ref changes in data.
func changedKeys(ref Ref, data map[string]any) []string {
	if ref.Key != "" {
		return []string{ref.Key}
	}
	return slices.Sorted(maps.Keys(data))
}

// replaced returns data with new values: for ref's key, or for every key.
func replaced(ref Ref, data map[string]any, nv newValues) (map[string]any, []string, error) {
	keys := changedKeys(ref, data)
	if ref.Key != "" {
		if _, ok := data[ref.Key]; !ok {
			return nil, nil, fmt.Errorf("%s: the secret has no key %q (it has %v): %w", ref, ref.Key, slices.Sorted(maps.Keys(data)), ErrNotFound)
		}
	}
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("%s: the secret has no keys to rotate", ref)
	}
	if nv.one && len(keys) > 1 {
		return nil, nil, fmt.Errorf("%s: the secret has keys %v and one value was given: name the key to set (%s#KEY)", ref, keys, ref)
	}
	for _, k := range nv.keys {
		if !slices.Contains(keys, k) {
			return nil, nil, fmt.Errorf("%s: key %q has its own length or alphabet, but the rotation changes only %v: %w", ref, k, keys, ErrNotFound)
		}
	}
	next := maps.Clone(data)
	for _, k := range keys {
		v, err := nv.of(k)
		if err != nil {
			return nil, nil, err
		}
		next[k] = v
	}
	return next, keys, nil
}

func issueAWS(ctx context.Context, env action.Env, s awsSecret, rotation string, create bool, nv newValues) (action.Result, error) {
	ref := s.ref
	token := tokenFor(rotation)
	out := SecretRotation{Ref: ref.String(), Store: ref.Store, NewVersion: token, Keys: []string{ref.Key}}
	if ref.Key == "" {
		out.Keys = []string{""}
	}
	stages, err := s.stages(ctx)
	var nf *errNotFound
	if create && errors.As(err, &nf) {
		return createAWS(ctx, env, s, rotation, out, nv)
	}
	if err != nil {
		return action.Result{}, err
	}
	var res action.Result
	read := ""
	for _, n := range notesOf[issueNote](env) {
		if n.Read != "" && read == "" {
			read = n.Read
		}
	}
	if _, exists := stages[token]; exists {
		// An earlier attempt created the version: reuse it.
		if read == "" {
			read = holder(stages, stageCurrent)
		}
		v, _, err := s.value(ctx, token)
		if err != nil {
			return action.Result{}, err
		}
		out.OldVersion, out.Fingerprint = read, Fingerprint(rotation, map[string]any{"": v})
		out.Current = holder(stages, stageCurrent) == token
		return action.Result{Changed: true, Output: out}, nil
	}
	cur, curID, err := s.value(ctx, "")
	if err != nil {
		return action.Result{}, err
	}
	if read != "" && read != curID {
		return action.Result{}, fmt.Errorf("%s: AWSCURRENT moved from %s to %s while kir rotated it: %w; nothing overwritten", ref, read, curID, ErrConcurrentWrite)
	}
	out.OldVersion = curID
	next, err := replacedString(ref, cur, nv)
	if err != nil {
		return action.Result{}, err
	}
	out.Fingerprint = Fingerprint(rotation, map[string]any{"": next})
	if !env.DryRun.Persists() {
		return action.Result{Changed: true, Output: out}, nil
	}
	if err := note(env, issueNote{Read: curID}); err != nil {
		return action.Result{}, err
	}
	if left := holder(stages, stagePending); left != "" {
		// What an interrupted rotation (kir's or a Lambda's) left: it was
		// never made current, so it is cleaned, not resumed.
		if err := s.move(ctx, stagePending, "", left); err != nil {
			return action.Result{}, err
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: removed AWSPENDING from version %s, left by an interrupted rotation", ref, left))
	}
	if err := s.putPending(ctx, token, next); err != nil {
		return action.Result{}, err
	}
	res.Changed, res.Output = true, out
	return res, nil
}

// createAWS creates a missing secret, its first version the rotation's.
func createAWS(ctx context.Context, env action.Env, s awsSecret, rotation string, out SecretRotation, nv newValues) (action.Result, error) {
	next, err := replacedString(s.ref, "{}", nv)
	if err != nil {
		return action.Result{}, err
	}
	out.Fingerprint, out.Current = Fingerprint(rotation, map[string]any{"": next}), true
	if !env.DryRun.Persists() {
		return action.Result{Changed: true, Output: out}, nil
	}
	if err := s.create(ctx, tokenFor(rotation), next); err != nil {
		return action.Result{}, err
	}
	return action.Result{Changed: true, Output: out}, nil
}

// replacedString returns a Secrets Manager value with a new value for ref's
// key (a field of its JSON object), or a whole new value.
func replacedString(ref Ref, cur string, nv newValues) (string, error) {
	var obj map[string]any
	isObject := json.Unmarshal([]byte(cur), &obj) == nil && obj != nil
	switch {
	case ref.Key == "" && (len(nv.keys) == 0 || !isObject):
		if len(nv.keys) > 0 {
			return "", fmt.Errorf("%s: the value is not a JSON object, so it has no keys %v", ref, nv.keys)
		}
		return nv.of("")
	case !isObject:
		return "", fmt.Errorf("%s: the value is not a JSON object, so it has no key %q", ref, ref.Key) // never the value or the parser's quote of it
	}
	next, _, err := replaced(ref, obj, nv)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(next)
	if err != nil {
		return "", fmt.Errorf("%s: encoding the new value: %w", ref, err)
	}
	return string(b), nil
}

// FinishParams are rotate.finish-secret's and rotate.rollback-secret's
// parameters: a rotation's record.
type FinishParams struct {
	SecretParams
	OldVersion string `json:"oldVersion,omitempty" doc:"The version current before the rotation; empty when the rotation created the secret."`
	NewVersion string `json:"newVersion" kir:"required" doc:"The version the rotation wrote."`
}

// Validate checks the parameters without I/O.
func (p FinishParams) Validate() error {
	errs := []error{p.validate()}
	if p.NewVersion == "" {
		errs = append(errs, errors.New("newVersion must not be empty"))
	}
	return errors.Join(errs...)
}

// FinishSecret makes the new version current. Secrets Manager: AWSCURRENT
// moves to it (AWSPREVIOUS follows to the old one) and AWSPENDING is
// removed — outside a rotation Lambda nothing else removes it. Vault: the
// version was current when written; nothing to do.
func (Stores) FinishSecret(ctx context.Context, env action.Env, p FinishParams) (action.Result, error) {
	ref, _ := ParseRef(p.Ref)
	if ref.Store == StoreVault {
		return action.Result{Output: map[string]any{"current": p.NewVersion}}, nil
	}
	c, err := NewSecretsManager(ctx, AWSOptions{EndpointURL: p.EndpointURL, Region: p.Region})
	if err != nil {
		return action.Result{}, err
	}
	return switchAWS(ctx, env, awsSecret{c: c, ref: ref}, p.NewVersion, p.OldVersion)
}

// switchAWS moves AWSCURRENT from version from to version to, and removes
// AWSPENDING from to. Done already is fine; AWSCURRENT on a third version
// means someone else moved it, and kir stops.
func switchAWS(ctx context.Context, env action.Env, s awsSecret, to, from string) (action.Result, error) {
	stages, err := s.stages(ctx)
	if err != nil {
		return action.Result{}, err
	}
	if _, ok := stages[to]; !ok {
		return action.Result{}, &errNotFound{what: fmt.Sprintf("%s version %s", s.ref, to)}
	}
	res := action.Result{Output: map[string]any{"current": to, "previous": from}}
	if !env.DryRun.Persists() {
		res.Changed = holder(stages, stageCurrent) != to || slices.Contains(stages[to], stagePending)
		return res, nil
	}
	switch cur := holder(stages, stageCurrent); cur {
	case to:
	case "":
		if err := s.move(ctx, stageCurrent, to, ""); err != nil {
			return action.Result{}, err
		}
		res.Changed = true
	case from:
		if err := s.move(ctx, stageCurrent, to, from); err != nil {
			return action.Result{}, err
		}
		res.Changed = true
	default:
		return action.Result{}, fmt.Errorf("%s: AWSCURRENT is on version %s, neither kir's %s nor %s: %w; nothing moved", s.ref, cur, to, from, ErrConcurrentWrite)
	}
	if slices.Contains(stages[to], stagePending) {
		if err := s.move(ctx, stagePending, "", to); err != nil {
			return action.Result{}, err
		}
		res.Changed = true
	}
	return res, nil
}

// RollbackSecret makes the version current before a rotation current
// again. Vault: its data is written as a new version, with check-and-set
// against the rotation's version (a later write is not overwritten).
// Secrets Manager: AWSCURRENT moves back to it.
func (s Stores) RollbackSecret(ctx context.Context, env action.Env, p FinishParams) (action.Result, error) {
	ref, _ := ParseRef(p.Ref)
	if p.OldVersion == "" || p.OldVersion == "0" {
		return action.Result{}, fmt.Errorf("%s: the rotation created the secret: there is no earlier version to roll back to", ref)
	}
	if ref.Store == StoreSecretsManager {
		c, err := NewSecretsManager(ctx, AWSOptions{EndpointURL: p.EndpointURL, Region: p.Region})
		if err != nil {
			return action.Result{}, err
		}
		return switchAWS(ctx, env, awsSecret{c: c, ref: ref}, p.OldVersion, p.NewVersion)
	}
	c, err := NewVaultClient(ctx, s.Vault)
	if err != nil {
		return action.Result{}, err
	}
	kv := vaultKV{c: c, ref: ref}
	old, err := strconv.Atoi(p.OldVersion)
	if err != nil {
		return action.Result{}, fmt.Errorf("oldVersion %q is not a Vault version number", p.OldVersion)
	}
	rotated, err := strconv.Atoi(p.NewVersion)
	if err != nil {
		return action.Result{}, fmt.Errorf("newVersion %q is not a Vault version number", p.NewVersion)
	}
	want, err := kv.version(ctx, old)
	if err != nil {
		return action.Result{}, err
	}
	cur, data, err := kv.current(ctx)
	if err != nil {
		return action.Result{}, err
	}
	out := map[string]any{"restored": p.OldVersion, "current": strconv.Itoa(cur)}
	if Fingerprint(p.Rotation, data) == Fingerprint(p.Rotation, want) {
		return action.Result{Output: out}, nil // rolled back already
	}
	if cur != rotated {
		return action.Result{}, fmt.Errorf("%s: version %d was written after kir's version %d: rolling back would discard it: %w; nothing overwritten", ref, cur, rotated, ErrConcurrentWrite)
	}
	if !env.DryRun.Persists() {
		return action.Result{Changed: true, Output: out}, nil
	}
	n, err := kv.put(ctx, want, cur)
	if err != nil {
		return action.Result{}, err
	}
	out["current"] = strconv.Itoa(n)
	return action.Result{Changed: true, Output: out}, nil
}
