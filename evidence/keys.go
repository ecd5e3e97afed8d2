package evidence

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"kir.dev/kir/internal/durable"
)

// Key algorithms Keygen knows.
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256"
)

// Key file names Keygen writes in its directory.
const (
	PrivateKeyFile = "kir.key"
	PublicKeyFile  = "kir.pub"
)

// ErrUnsupportedKey is returned for keys other than Ed25519 and ECDSA P-256,
// the two that DSSE verifiers (cosign among them) agree on.
var ErrUnsupportedKey = errors.New("unsupported key: want Ed25519 or ECDSA P-256")

// Signer signs statements and custody entries.
type Signer interface {
	// Signer signs: an Ed25519 key the message itself, an ECDSA P-256 key
	// its SHA-256 digest (ASN.1 DER signature).
	crypto.Signer
	// KeyID is the hex SHA-256 of the PKIX (DER) encoding of the public key.
	KeyID() string
}

type keySigner struct {
	crypto.Signer
	id string
}

func (s keySigner) KeyID() string { return s.id }

// NewSigner wraps an Ed25519 or ECDSA P-256 crypto.Signer, such as a key in
// a KMS or a hardware token.
func NewSigner(s crypto.Signer) (Signer, error) {
	id, err := KeyID(s.Public())
	if err != nil {
		return nil, err
	}
	return keySigner{Signer: s, id: id}, nil
}

// KeyID returns the hex SHA-256 of the PKIX encoding of pub, the id kir
// puts beside each signature.
func KeyID(pub crypto.PublicKey) (string, error) {
	if err := checkKey(pub); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return nil
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("%w (got %T)", ErrUnsupportedKey, pub)
}

// Keygen writes a new key pair into dir (created 0700 if missing):
// kir.key, the private key as PKCS#8 PEM (mode 0600), and kir.pub, the
// public key as PKIX PEM (mode 0644). alg is "ed25519" (also when empty) or
// "ecdsa-p256". Neither file may exist: a key is never overwritten.
func Keygen(dir, alg string) error {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "", AlgEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return fmt.Errorf("generating key: unknown algorithm %q: want %s or %s", alg, AlgEd25519, AlgECDSAP256)
	}
	if err != nil {
		return fmt.Errorf("generating key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	defer clear(privDER)
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("encoding public key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("generating key: %w", err)
	}
	keyPath, pubPath := filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)
	// The public key first: if it exists, nothing is written at all.
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return fmt.Errorf("writing public key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	defer clear(keyPEM)
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		os.Remove(pubPath)
		return fmt.Errorf("writing private key: %w", err)
	}
	return durable.SyncDir(dir)
}

// writeNew creates path exclusively with mode perm and writes b, durably.
func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// LoadSigner reads a private key written by Keygen (PKCS#8 PEM, Ed25519 or
// ECDSA P-256). Errors name the file, never its content.
func LoadSigner(path string) (Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading private key: %w", err)
	}
	defer clear(b)
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("loading private key %s: no PKCS#8 PEM block (\"PRIVATE KEY\")", path)
	}
	defer clear(block.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("loading private key %s: not a PKCS#8 key", path)
	}
	var s crypto.Signer
	switch k := key.(type) {
	case ed25519.PrivateKey:
		s = k
	case *ecdsa.PrivateKey:
		s = k
	default:
		return nil, fmt.Errorf("loading private key %s: %w (got %T)", path, ErrUnsupportedKey, key)
	}
	signer, err := NewSigner(s)
	if err != nil {
		return nil, fmt.Errorf("loading private key %s: %w", path, err)
	}
	return signer, nil
}

// LoadPublicKey reads a public key written by Keygen (PKIX PEM).
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("loading public key %s: no PKIX PEM block (\"PUBLIC KEY\")", path)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("loading public key %s: %w", path, err)
	}
	if err := checkKey(pub); err != nil {
		return nil, fmt.Errorf("loading public key %s: %w", path, err)
	}
	return pub, nil
}
