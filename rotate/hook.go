package rotate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"kir.dev/kir/action"
)

// HookParams are rotate.hook's parameters.
type HookParams struct {
	SecretParams
	Version string   `json:"version" kir:"required" doc:"The version whose value the hook receives on its standard input."`
	Phase   string   `json:"phase" kir:"required" doc:"set (push the new value to the system that uses it) or test (check that system works with it)."`
	Command []string `json:"command" kir:"required" doc:"The hook: a program and its arguments, run without a shell. It gets the value on standard input and KIR_ROTATION, KIR_SECRET_REF, KIR_SECRET_VERSION and KIR_HOOK_PHASE in its environment; exit status 0 is success. It must be idempotent: a resumed rotation runs it again."`
}

// Validate checks the parameters without I/O.
func (p HookParams) Validate() error {
	errs := []error{p.validate()}
	if p.Phase != "set" && p.Phase != "test" {
		errs = append(errs, fmt.Errorf("phase %q: want set or test", p.Phase))
	}
	if len(p.Command) == 0 || p.Command[0] == "" {
		errs = append(errs, errors.New("command must name a program"))
	}
	if p.Version == "" {
		errs = append(errs, errors.New("version must not be empty"))
	}
	return errors.Join(errs...)
}

// Hook runs a set or test hook with a version's value on its standard
// input. Its standard output is discarded and its standard error goes to
// kir's, so that nothing it prints reaches a journal or evidence.
func (s Stores) Hook(ctx context.Context, env action.Env, p HookParams) (action.Result, error) {
	ref, _ := ParseRef(p.Ref)
	out := map[string]any{"phase": p.Phase, "command": p.Command[0]}
	if !env.DryRun.Persists() {
		return action.Result{Output: out}, nil
	}
	value, err := s.readValue(ctx, ref, p.SecretParams, p.Version)
	if err != nil {
		return action.Result{}, err
	}
	cmd := exec.CommandContext(ctx, p.Command[0], p.Command[1:]...)
	cmd.Stdin = strings.NewReader(value)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "KIR_ROTATION="+p.Rotation, "KIR_SECRET_REF="+ref.String(),
		"KIR_SECRET_VERSION="+p.Version, "KIR_HOOK_PHASE="+p.Phase)
	if err := cmd.Run(); err != nil {
		return action.Result{}, fmt.Errorf("%s hook %s for %s: %w", p.Phase, p.Command[0], ref, err)
	}
	return action.Result{Changed: p.Phase == "set", Output: out}, nil
}

// readValue returns the value of ref (its key, or the whole secret) at a
// version.
func (s Stores) readValue(ctx context.Context, ref Ref, p SecretParams, version string) (string, error) {
	if ref.Store == StoreVault {
		c, err := NewVaultClient(ctx, s.Vault)
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(version)
		if err != nil {
			return "", fmt.Errorf("version %q is not a Vault version number", version)
		}
		data, err := vaultKV{c: c, ref: ref}.version(ctx, n)
		if err != nil {
			return "", err
		}
		return keyOf(ref, data)
	}
	c, err := NewSecretsManager(ctx, AWSOptions{EndpointURL: p.EndpointURL, Region: p.Region})
	if err != nil {
		return "", err
	}
	v, _, err := awsSecret{c: c, ref: ref}.value(ctx, version)
	if err != nil || ref.Key == "" {
		return v, err
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(v), &obj); err != nil {
		return "", fmt.Errorf("%s: the value is not a JSON object, so it has no key %q", ref, ref.Key)
	}
	return keyOf(ref, obj)
}

// keyOf returns ref's key of data, or all of data as JSON.
func keyOf(ref Ref, data map[string]any) (string, error) {
	if ref.Key == "" {
		b, err := json.Marshal(data)
		return string(b), err
	}
	v, ok := data[ref.Key]
	if !ok {
		return "", fmt.Errorf("%s: no key %q", ref, ref.Key)
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// ReadValue returns the value of a secret reference (its key, or the whole
// secret) at a version: for `kir rotate kubeconfig --show`, which prints
// what it stored because the responder asked.
func (s Stores) ReadValue(ctx context.Context, refString string, p SecretParams, version string) (string, error) {
	ref, err := ParseRef(refString)
	if err != nil {
		return "", err
	}
	return s.readValue(ctx, ref, p, version)
}
