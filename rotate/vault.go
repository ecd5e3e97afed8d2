package rotate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// Stores say how rotate's actions reach the secret stores. The caller
// builds them (kir's command line, from its environment table) and passes
// them in: rotate reads no environment variable of kir's. The stores'
// clients read their own standard configuration, as their CLIs do: Vault's
// library VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE and VAULT_TOKEN, the
// AWS SDK its configuration chain; a Secrets Manager endpoint and region
// are each rotation's parameters.
type Stores struct {
	// Vault says how to log in to Vault.
	Vault VaultAuth
}

// VaultAuth says how kir logs in to Vault: with the token Vault's library
// reads (VAULT_TOKEN), or by another method. kir's command line fills it
// from the variables named on each field.
type VaultAuth struct {
	// Method is "token" (VAULT_TOKEN, the default), "kubernetes" or
	// "approle". KIR_VAULT_AUTH.
	Method string
	// Mount is the auth method's mount path; default the method's name.
	// KIR_VAULT_AUTH_MOUNT.
	Mount string
	// Role is the kubernetes method's role. KIR_VAULT_ROLE.
	Role string
	// JWTFile holds the service-account token the kubernetes method logs
	// in with. KIR_VAULT_JWT_FILE, default the pod's projected token.
	JWTFile string
	// RoleID and SecretIDFile are the approle method's credentials.
	// KIR_VAULT_ROLE_ID, KIR_VAULT_SECRET_ID_FILE.
	RoleID       string
	SecretIDFile string
}

// DefaultJWTFile is where a pod finds its service-account token.
const DefaultJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// NewVaultClient returns a Vault client configured from Vault's
// environment variables and logged in as auth says.
func NewVaultClient(ctx context.Context, auth VaultAuth) (*vault.Client, error) {
	cfg := vault.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, …
	if cfg.Error != nil {
		return nil, fmt.Errorf("configuring the Vault client: %w", cfg.Error)
	}
	c, err := vault.NewClient(cfg) // reads VAULT_TOKEN, VAULT_NAMESPACE
	if err != nil {
		return nil, fmt.Errorf("configuring the Vault client: %w", err)
	}
	var path string
	body := map[string]any{}
	switch auth.Method {
	case "", "token":
		if c.Token() == "" {
			return nil, errors.New("no Vault credentials: set VAULT_TOKEN, or KIR_VAULT_AUTH=kubernetes|approle")
		}
		return c, nil
	case "kubernetes":
		if auth.Role == "" {
			return nil, errors.New("kubernetes auth to Vault: KIR_VAULT_ROLE is not set")
		}
		file := auth.JWTFile
		if file == "" {
			file = DefaultJWTFile
		}
		jwt, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("kubernetes auth to Vault: reading the service-account token: %w", err)
		}
		path, body["role"], body["jwt"] = mountOr(auth.Mount, "kubernetes"), auth.Role, strings.TrimSpace(string(jwt))
	case "approle":
		if auth.RoleID == "" || auth.SecretIDFile == "" {
			return nil, errors.New("approle auth to Vault: KIR_VAULT_ROLE_ID and KIR_VAULT_SECRET_ID_FILE must both be set")
		}
		sid, err := os.ReadFile(auth.SecretIDFile)
		if err != nil {
			return nil, fmt.Errorf("approle auth to Vault: reading the secret id: %w", err)
		}
		path, body["role_id"], body["secret_id"] = mountOr(auth.Mount, "approle"), auth.RoleID, strings.TrimSpace(string(sid))
	default:
		return nil, fmt.Errorf("KIR_VAULT_AUTH=%q: want token, kubernetes or approle", auth.Method)
	}
	c.ClearToken()
	s, err := c.Logical().WriteWithContext(ctx, "auth/"+path+"/login", body)
	if err != nil {
		return nil, fmt.Errorf("logging in to Vault (%s): %w", auth.Method, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("logging in to Vault (%s): no token in the answer", auth.Method)
	}
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

func mountOr(m, def string) string {
	if m == "" {
		return def
	}
	return strings.Trim(m, "/")
}

// vaultKV is one KV v2 secret.
type vaultKV struct {
	c   *vault.Client
	ref Ref
}

// ErrNotFound matches the error for a secret or version a store does not
// have.
var ErrNotFound = errors.New("not found")

// errNotFound reports a secret or version the store does not have.
type errNotFound struct{ what string }

func (e *errNotFound) Error() string        { return e.what + " not found" }
func (e *errNotFound) Is(target error) bool { return target == ErrNotFound }

// ErrConcurrentWrite reports that someone else wrote the secret while kir
// rotated it: kir stops rather than overwrite.
var ErrConcurrentWrite = errors.New("written concurrently")

// current returns the secret's current version and data.
func (v vaultKV) current(ctx context.Context) (int, map[string]any, error) {
	s, err := v.c.KVv2(v.ref.Mount).Get(ctx, v.ref.Path)
	if err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return 0, nil, &errNotFound{what: v.ref.String()}
		}
		return 0, nil, fmt.Errorf("reading %s: %w", v.ref, err)
	}
	if s.VersionMetadata == nil {
		return 0, nil, fmt.Errorf("reading %s: Vault returned no version metadata (is %s a KV version 2 mount?)", v.ref, v.ref.Mount)
	}
	return s.VersionMetadata.Version, s.Data, nil
}

// version returns the data of version n.
func (v vaultKV) version(ctx context.Context, n int) (map[string]any, error) {
	s, err := v.c.KVv2(v.ref.Mount).GetVersion(ctx, v.ref.Path, n)
	if err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return nil, &errNotFound{what: fmt.Sprintf("%s version %d (deleted, destroyed or beyond max_versions)", v.ref, n)}
		}
		return nil, fmt.Errorf("reading %s version %d: %w", v.ref, n, err)
	}
	return s.Data, nil
}

// maxVersions returns how many versions Vault keeps of the secret: its
// own max_versions, else its mount's, else Vault's default of 10.
func (v vaultKV) maxVersions(ctx context.Context) (int, error) {
	m, err := v.c.KVv2(v.ref.Mount).GetMetadata(ctx, v.ref.Path)
	switch {
	case errors.Is(err, vault.ErrSecretNotFound):
		m = &vault.KVMetadata{} // a secret kir creates: the mount decides
	case err != nil:
		return 0, fmt.Errorf("reading the metadata of %s: %w", v.ref, err)
	}
	if m.MaxVersions > 0 {
		return m.MaxVersions, nil
	}
	s, err := v.c.Logical().ReadWithContext(ctx, v.ref.Mount+"/config")
	if err != nil {
		return 0, fmt.Errorf("reading the configuration of mount %s: %w", v.ref.Mount, err)
	}
	if s != nil {
		if n, ok := s.Data["max_versions"].(interface{ Int64() (int64, error) }); ok {
			if k, err := n.Int64(); err == nil && k > 0 {
				return int(k), nil
			}
		}
	}
	return 10, nil
}

// put writes data as the version after cas, and returns its number. A
// version other than cas being current is ErrConcurrentWrite.
func (v vaultKV) put(ctx context.Context, data map[string]any, cas int) (int, error) {
	s, err := v.c.KVv2(v.ref.Mount).Put(ctx, v.ref.Path, data, vault.WithCheckAndSet(cas))
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return 0, fmt.Errorf("%s: a version after %d exists: %w; nothing overwritten", v.ref, cas, ErrConcurrentWrite)
		}
		return 0, fmt.Errorf("writing %s: %w", v.ref, err)
	}
	if s.VersionMetadata == nil {
		return 0, fmt.Errorf("writing %s: Vault returned no version metadata", v.ref)
	}
	return s.VersionMetadata.Version, nil
}
