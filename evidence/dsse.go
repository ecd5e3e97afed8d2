package evidence

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// DSSE (https://github.com/secure-systems-lab/dsse, v1.0): a signature over
// PAE(payloadType, payload), so that the type is signed along with the
// bytes and no canonical JSON is needed.

// Payload types signed.
const (
	// PayloadTypeInToto is statement.dsse.json's payload type.
	PayloadTypeInToto = "application/vnd.in-toto+json"
	// PayloadTypeCustody is the type signed for a custody entry appended
	// after sealing.
	PayloadTypeCustody = "application/vnd.kir.custody.v1+json"
)

// envelope is a DSSE envelope, as statement.dsse.json holds it.
type envelope struct {
	PayloadType string        `json:"payloadType"`
	Payload     string        `json:"payload"` // standard base64
	Signatures  []envelopeSig `json:"signatures"`
}

// envelopeSig is one signature of an envelope, and the signature of a
// custody entry appended after sealing.
type envelopeSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // standard base64
}

// pae is DSSE's pre-authentication encoding:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func pae(typ string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(typ)))
	b.WriteByte(' ')
	b.WriteString(typ)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteByte(' ')
	b.Write(body)
	return b.Bytes()
}

// sign signs PAE(typ, body): Ed25519 over the message, ECDSA over its
// SHA-256, as cosign and the DSSE reference verifiers expect.
func sign(s Signer, typ string, body []byte) (envelopeSig, error) {
	msg := pae(typ, body)
	var (
		sig []byte
		err error
	)
	switch s.Public().(type) {
	case ed25519.PublicKey:
		sig, err = s.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		sig, err = s.Sign(rand.Reader, sum[:], crypto.SHA256)
	default:
		err = fmt.Errorf("%w (got %T)", ErrUnsupportedKey, s.Public())
	}
	if err != nil {
		return envelopeSig{}, fmt.Errorf("signing: %w", err)
	}
	return envelopeSig{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}, nil
}

// verifySig reports whether sig is pub's valid signature of PAE(typ, body).
func verifySig(pub crypto.PublicKey, typ string, body []byte, sig envelopeSig) bool {
	raw, err := base64.StdEncoding.DecodeString(sig.Sig)
	if err != nil {
		return false
	}
	msg := pae(typ, body)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, raw)
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, sum[:], raw)
	}
	return false
}

// signEnvelope wraps payload in an envelope signed by s.
func signEnvelope(s Signer, typ string, payload []byte) ([]byte, error) {
	sig, err := sign(s, typ, payload)
	if err != nil {
		return nil, err
	}
	env := envelope{PayloadType: typ, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []envelopeSig{sig}}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
