package rotate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"kir.dev/kir/action"
)

// PodParams are rotate.pod-credentials' parameters.
type PodParams struct {
	Namespace      action.Namespace `json:"namespace" kir:"required" doc:"Namespace of the pods."`
	Pods           []action.PodName `json:"pods" kir:"required" doc:"Names of the compromised pods."`
	Rotation       string           `json:"rotation" kir:"required" doc:"The run's id: each secret's rotation id is <rotation>/<ref>."`
	EndpointURL    string           `json:"endpointURL,omitempty" doc:"Secrets Manager: a compatible server's URL instead of AWS's."`
	Region         string           `json:"region,omitempty" doc:"Secrets Manager: the AWS region."`
	ConfirmTimeout action.Duration  `json:"confirmTimeout,omitempty" doc:"How long to wait for TokenReview to reject the ServiceAccount's old tokens (default 2m)."`
	Credentials    string           `json:"credentials,omitempty" doc:"Which credentials: secrets (the Vault and Secrets Manager secrets, which can be rolled back, and the list of what kir cannot rotate), serviceAccounts (the ServiceAccounts' tokens, revoked: cannot be rolled back), or empty for both. Playbooks rotate the secrets first and revoke the tokens in a step of their own that needs approval."`
}

// The values of PodParams.Credentials.
const (
	CredentialsAll             = ""
	CredentialsSecrets         = "secrets"
	CredentialsServiceAccounts = "serviceAccounts"
)

// Validate checks the parameters without I/O.
func (p PodParams) Validate() error {
	var errs []error
	if p.Namespace == "" {
		errs = append(errs, errors.New("namespace must not be empty"))
	}
	if len(p.Pods) == 0 {
		errs = append(errs, errors.New("pods must name at least one pod"))
	}
	if p.Rotation == "" {
		errs = append(errs, errors.New("rotation must not be empty"))
	}
	switch p.Credentials {
	case CredentialsAll, CredentialsSecrets, CredentialsServiceAccounts:
	default:
		errs = append(errs, fmt.Errorf("credentials %q: want %s, %s or empty for both", p.Credentials, CredentialsSecrets, CredentialsServiceAccounts))
	}
	return errors.Join(errs...)
}

// PodOutput is what rotate.pod-credentials did.
type PodOutput struct {
	// Secrets are the rotations of the Vault and Secrets Manager secrets
	// the pods could read: `kir rotate rollback RUN-ID` undoes them.
	Secrets []SecretRotation `json:"secrets"`
	// ServiceAccounts are the ServiceAccounts whose tokens were revoked.
	ServiceAccounts []ServiceAccountOutput `json:"serviceAccounts"`
	// Left are the credentials kir cannot rotate, each with what to do.
	Left []Item `json:"left"`
	// Failed are the rotations that failed, with why; rerunning retries them.
	Failed []string `json:"failed,omitempty"`
}

// RotatePodCredentials rotates everything the pods could read (see
// PlanPod): their Vault and Secrets Manager secrets (issue, then finish,
// each as rotate-secret would) and their ServiceAccounts' tokens (as
// rotate.serviceaccount). Kubernetes Secrets and what kir cannot reach are
// listed in Left. p.Credentials narrows it to the secrets (and Left) or
// to the ServiceAccounts. Each credential notes its progress under its own
// reference, so a resumed run finishes each one exactly once.
func (s Stores) RotatePodCredentials(ctx context.Context, env action.Env, p PodParams) (action.Result, error) {
	out := PodOutput{Secrets: []SecretRotation{}, ServiceAccounts: []ServiceAccountOutput{}, Left: []Item{}}
	res := action.Result{Output: &out}
	refs, sas, err := planPods(ctx, env, p, &res, &out)
	if err != nil {
		return res, err
	}
	if len(sas) > 0 {
		// Before any secret is rotated: not the secrets without the tokens.
		if err := checkAccess(ctx, env.Kube, string(p.Namespace), serviceAccountRules(false)); err != nil {
			return res, fmt.Errorf("rotating the credentials of pods in %s: %w", p.Namespace, err)
		}
	}
	var errs []error
	for _, r := range refs {
		sp := SecretParams{Ref: r, Rotation: podRotation(p.Rotation, r), EndpointURL: p.EndpointURL, Region: p.Region}
		rec, warns, err := s.rotateOne(ctx, scoped(env, r), sp)
		res.Warnings = append(res.Warnings, warns...)
		if err != nil {
			out.Failed = append(out.Failed, fmt.Sprintf("%s: %v", r, err))
			errs = append(errs, err)
			continue
		}
		res.Changed = true
		out.Secrets = append(out.Secrets, rec)
	}
	for _, name := range sas {
		sr, err := RotateServiceAccount(ctx, scoped(env, "serviceaccount://"+string(p.Namespace)+"/"+name),
			ServiceAccountParams{Namespace: string(p.Namespace), Name: name, ConfirmTimeout: p.ConfirmTimeout})
		res.Warnings = append(res.Warnings, sr.Warnings...)
		res.Writes = append(res.Writes, sr.Writes...)
		if err != nil {
			out.Failed = append(out.Failed, fmt.Sprintf("serviceaccount %s/%s: %v", p.Namespace, name, err))
			errs = append(errs, err)
			continue
		}
		res.Changed = res.Changed || sr.Changed
		if o, ok := sr.Output.(ServiceAccountOutput); ok {
			out.ServiceAccounts = append(out.ServiceAccounts, o)
		} else if o, ok := sr.Output.(*ServiceAccountOutput); ok {
			out.ServiceAccounts = append(out.ServiceAccounts, *o)
		}
	}
	return res, errors.Join(errs...)
}

// planPods plans the rotation of the pods' credentials: the secrets to
// rotate and the ServiceAccounts to revoke, as p.Credentials selects; the
// rest, when secrets are selected, goes to out.Left.
func planPods(ctx context.Context, env action.Env, p PodParams, res *action.Result, out *PodOutput) (refs, sas []string, err error) {
	for _, pod := range p.Pods {
		plan, err := PlanPod(ctx, env.Kube, nil, string(p.Namespace), string(pod))
		if err != nil {
			return nil, nil, err
		}
		res.Warnings = append(res.Warnings, plan.Warnings...)
		for _, it := range plan.Items {
			switch {
			case it.Kind == ItemVault || it.Kind == ItemSecretsManager:
				if _, err := ParseRef(it.Ref); err == nil && it.Command != "" && !slices.Contains(refs, it.Ref) {
					refs = append(refs, it.Ref)
					continue
				}
			case it.Kind == ItemServiceAccount:
				if !slices.Contains(sas, plan.ServiceAccount) {
					sas = append(sas, plan.ServiceAccount)
				}
				continue
			}
			if !slices.ContainsFunc(out.Left, func(l Item) bool { return l.Ref == it.Ref }) {
				out.Left = append(out.Left, it)
			}
		}
	}
	if p.Credentials == CredentialsServiceAccounts {
		refs, out.Left = nil, []Item{}
	}
	if p.Credentials == CredentialsSecrets {
		sas = nil
	}
	return refs, sas, nil
}

// rotateOne issues a new value for a secret and makes it current.
func (s Stores) rotateOne(ctx context.Context, env action.Env, p SecretParams) (SecretRotation, []string, error) {
	ref, _ := ParseRef(p.Ref)
	res, err := s.IssueSecret(ctx, env, IssueSecretParams{SecretParams: p})
	if err != nil {
		return SecretRotation{}, res.Warnings, err
	}
	rec := res.Output.(SecretRotation)
	fin, err := s.FinishSecret(ctx, env, FinishParams{SecretParams: p, OldVersion: rec.OldVersion, NewVersion: rec.NewVersion})
	if err != nil {
		return rec, append(res.Warnings, fin.Warnings...), err
	}
	rec.Current = rec.Current || ref.Store == StoreSecretsManager
	return rec, append(res.Warnings, fin.Warnings...), nil
}

// scopedNote is a note of one credential among several of one step.
type scopedNote struct {
	Item string          `json:"item"`
	Data json.RawMessage `json:"data"`
}

// scoped returns env with the notes of item only, and a Note that files
// new ones under it.
func scoped(env action.Env, item string) action.Env {
	sub := env
	sub.Notes = nil
	for _, raw := range env.Notes {
		var n scopedNote
		if json.Unmarshal(raw, &n) == nil && n.Item == item {
			sub.Notes = append(sub.Notes, n.Data)
		}
	}
	if env.Note != nil {
		sub.Note = func(data any) error {
			b, err := json.Marshal(data)
			if err != nil {
				return err
			}
			return env.Note(scopedNote{Item: item, Data: b})
		}
	}
	return sub
}
