package evidence

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// The DSSE specification's own example of PAE.
func TestPAE(t *testing.T) {
	t.Parallel()
	got := string(pae("http://example.com/HelloWorld", []byte("hello world")))
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if got != want {
		t.Errorf("pae = %q, want %q", got, want)
	}
}

// TestSignatureEncoding pins what DSSE verifiers other than kir (cosign)
// expect: Ed25519 over PAE itself, ECDSA P-256 an ASN.1 signature of
// SHA-256(PAE).
func TestSignatureEncoding(t *testing.T) {
	t.Parallel()
	body := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	msg := pae(PayloadTypeInToto, body)

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		key   crypto.Signer
		check func(sig []byte) bool
	}{
		{"ed25519", edKey, func(sig []byte) bool { return ed25519.Verify(edKey.Public().(ed25519.PublicKey), msg, sig) }},
		{"ecdsa-p256", ecKey, func(sig []byte) bool {
			sum := sha256.Sum256(msg)
			return ecdsa.VerifyASN1(&ecKey.PublicKey, sum[:], sig)
		}},
	} {
		s, err := NewSigner(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := sign(s, PayloadTypeInToto, body)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(sig.Sig)
		if err != nil {
			t.Fatal(err)
		}
		if !tc.check(raw) {
			t.Errorf("%s: the signature does not verify as DSSE prescribes", tc.name)
		}
		if !verifySig(s.Public(), PayloadTypeInToto, body, sig) {
			t.Errorf("%s: verifySig rejects its own signature", tc.name)
		}
		if verifySig(s.Public(), PayloadTypeCustody, body, sig) {
			t.Errorf("%s: the signature verifies for another payload type", tc.name)
		}
	}
	if _, err := NewSigner(mustRSA(t)); err == nil {
		t.Error("NewSigner accepted an RSA key")
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
