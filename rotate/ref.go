package rotate

import (
	"fmt"
	"strings"
)

// The stores a Ref can name.
const (
	StoreVault          = "vault"  // HashiCorp Vault, KV version 2
	StoreSecretsManager = "aws-sm" // AWS Secrets Manager
)

// Ref names a secret, or one key of it, in a store:
//
//	vault://MOUNT/PATH[#KEY]   a KV v2 secret (MOUNT is the engine's mount)
//	aws-sm://NAME[#KEY]        a Secrets Manager secret (KEY: a field of its JSON)
type Ref struct {
	// Store is StoreVault or StoreSecretsManager.
	Store string
	// Mount and Path locate a Vault secret.
	Mount, Path string
	// Name is a Secrets Manager secret's name or ARN.
	Name string
	// Key is one key of the secret's data; "" means the whole secret.
	Key string
}

// ParseRef parses a secret reference.
func ParseRef(s string) (Ref, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Ref{}, fmt.Errorf("secret reference %q: want vault://MOUNT/PATH[#KEY] or aws-sm://NAME[#KEY]", s)
	}
	rest, key, hasKey := strings.Cut(rest, "#")
	if hasKey && key == "" {
		return Ref{}, fmt.Errorf("secret reference %q: empty key after #", s)
	}
	switch scheme {
	case StoreVault:
		mount, path, _ := strings.Cut(strings.Trim(rest, "/"), "/")
		if mount == "" || path == "" {
			return Ref{}, fmt.Errorf("secret reference %q: want vault://MOUNT/PATH[#KEY], e.g. vault://secret/app/db#password", s)
		}
		if strings.HasPrefix(path, "data/") || strings.HasPrefix(path, "metadata/") {
			return Ref{}, fmt.Errorf("secret reference %q: name the secret's path, not the API's (drop %q)", s, strings.SplitN(path, "/", 2)[0]+"/")
		}
		return Ref{Store: StoreVault, Mount: mount, Path: path, Key: key}, nil
	case StoreSecretsManager:
		if rest == "" {
			return Ref{}, fmt.Errorf("secret reference %q: want aws-sm://NAME[#KEY]", s)
		}
		return Ref{Store: StoreSecretsManager, Name: rest, Key: key}, nil
	}
	return Ref{}, fmt.Errorf("secret reference %q: unknown store %q: want vault or aws-sm", s, scheme)
}

// String returns the reference in the form ParseRef reads.
func (r Ref) String() string {
	var s string
	switch r.Store {
	case StoreVault:
		s = "vault://" + r.Mount + "/" + r.Path
	default:
		s = r.Store + "://" + r.Name
	}
	if r.Key != "" {
		s += "#" + r.Key
	}
	return s
}
