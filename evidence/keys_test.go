package evidence_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kir.dev/kir/evidence"
)

func TestKeygen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		alg  string
		want any // the public key's type
	}{
		{"", ed25519.PublicKey(nil)},
		{evidence.AlgEd25519, ed25519.PublicKey(nil)},
		{evidence.AlgECDSAP256, (*ecdsa.PublicKey)(nil)},
	} {
		dir := filepath.Join(t.TempDir(), "keys")
		if err := evidence.Keygen(dir, tc.alg); err != nil {
			t.Fatalf("Keygen(%q): %v", tc.alg, err)
		}
		keyPath, pubPath := filepath.Join(dir, evidence.PrivateKeyFile), filepath.Join(dir, evidence.PublicKeyFile)
		for path, mode := range map[string]os.FileMode{keyPath: 0o600, pubPath: 0o644} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%q: %s has mode %v, want %v", tc.alg, filepath.Base(path), fi.Mode().Perm(), mode)
			}
		}
		key := readFile(t, keyPath)
		if block, _ := pem.Decode(key); block == nil || block.Type != "PRIVATE KEY" {
			t.Errorf("%q: kir.key is not a PKCS#8 PEM", tc.alg)
		}
		if block, _ := pem.Decode(readFile(t, pubPath)); block == nil || block.Type != "PUBLIC KEY" {
			t.Errorf("%q: kir.pub is not a PKIX PEM", tc.alg)
		}
		s, err := evidence.LoadSigner(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := evidence.LoadPublicKey(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := evidence.KeyID(pub); err != nil || id != s.KeyID() {
			t.Errorf("%q: key id of kir.pub %s (%v), of kir.key %s", tc.alg, id, err, s.KeyID())
		}
		switch tc.want.(type) {
		case ed25519.PublicKey:
			_, ok := pub.(ed25519.PublicKey)
			if !ok {
				t.Errorf("%q: public key %T, want ed25519", tc.alg, pub)
			}
		case *ecdsa.PublicKey:
			_, ok := pub.(*ecdsa.PublicKey)
			if !ok {
				t.Errorf("%q: public key %T, want ECDSA", tc.alg, pub)
			}
		}

		// A key is never overwritten.
		if err := evidence.Keygen(dir, tc.alg); !errors.Is(err, os.ErrExist) {
			t.Errorf("%q: second Keygen: %v, want ErrExist", tc.alg, err)
		}
		if !bytes.Equal(readFile(t, keyPath), key) {
			t.Errorf("%q: the second Keygen changed kir.key", tc.alg)
		}
	}
	if err := evidence.Keygen(t.TempDir(), "rsa-2048"); err == nil {
		t.Error("Keygen of an unknown algorithm succeeded")
	}
}

// TestLoadSignerErrors: errors name the file, never show its content.
func TestLoadSignerErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := evidence.Keygen(dir, ""); err != nil {
		t.Fatal(err)
	}
	key := readFile(t, filepath.Join(dir, evidence.PrivateKeyFile))
	block, _ := pem.Decode(key)
	secret := string(pem.EncodeToMemory(block))
	body := strings.Join(strings.Split(secret, "\n")[1:2], "") // the base64 line
	damaged := bytes.Clone(block.Bytes)
	damaged[len(damaged)-40] ^= 0xff
	for name, content := range map[string][]byte{
		"truncated.key": key[:len(key)/2],
		"damaged.key":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: damaged[:len(damaged)-8]}),
		"public.key":    readFile(t, filepath.Join(dir, evidence.PublicKeyFile)),
		"wrongtype.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: block.Bytes}),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := evidence.LoadSigner(path)
		if err == nil {
			t.Errorf("LoadSigner(%s) succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("LoadSigner(%s): %v: does not name the file", name, err)
		}
		if strings.Contains(err.Error(), body[:16]) {
			t.Errorf("LoadSigner(%s): the error shows key material: %v", name, err)
		}
	}
	if _, err := evidence.LoadPublicKey(filepath.Join(dir, evidence.PrivateKeyFile)); err == nil {
		t.Error("LoadPublicKey of a private key succeeded")
	} else if strings.Contains(err.Error(), body[:16]) {
		t.Errorf("LoadPublicKey of a private key: the error shows key material: %v", err)
	}
}
