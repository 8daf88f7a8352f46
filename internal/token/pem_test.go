package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func pemEncode(t *testing.T, typ string, der []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("marshalling %s: %v", typ, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePEMRoundTrip(t *testing.T) {
	m := genKeys(t)
	type tc struct {
		name     string
		pem      []byte
		alg      string
		canSign  bool
		original *Key // the key made directly from the same material
	}
	edK, ecK, rsaK := m.key(t, AlgEdDSA, ""), m.key(t, AlgES256, ""), m.key(t, AlgRS256, "")
	var tests []tc
	add := func(name, typ string, alg string, canSign bool, orig *Key, b []byte, err error) {
		tests = append(tests, tc{name: name, pem: pemEncode(t, typ, b, err), alg: alg, canSign: canSign, original: orig})
	}
	b, err := x509.MarshalPKCS8PrivateKey(m.ed)
	add("Ed25519 PKCS#8", "PRIVATE KEY", AlgEdDSA, true, edK, b, err)
	b, err = x509.MarshalPKCS8PrivateKey(m.ec)
	add("P-256 PKCS#8", "PRIVATE KEY", AlgES256, true, ecK, b, err)
	b, err = x509.MarshalECPrivateKey(m.ec)
	add("P-256 SEC 1", "EC PRIVATE KEY", AlgES256, true, ecK, b, err)
	b, err = x509.MarshalPKCS8PrivateKey(m.rsa)
	add("RSA PKCS#8", "PRIVATE KEY", AlgRS256, true, rsaK, b, err)
	add("RSA PKCS#1", "RSA PRIVATE KEY", AlgRS256, true, rsaK, x509.MarshalPKCS1PrivateKey(m.rsa), nil)
	b, err = x509.MarshalPKIXPublicKey(m.ed.Public())
	add("Ed25519 PKIX", "PUBLIC KEY", AlgEdDSA, false, edK, b, err)
	b, err = x509.MarshalPKIXPublicKey(m.ec.Public())
	add("P-256 PKIX", "PUBLIC KEY", AlgES256, false, ecK, b, err)
	b, err = x509.MarshalPKIXPublicKey(m.rsa.Public())
	add("RSA PKIX", "PUBLIC KEY", AlgRS256, false, rsaK, b, err)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePEM(tt.pem, "")
			if err != nil {
				t.Fatalf("ParsePEM: %v", err)
			}
			if k.Alg() != tt.alg || k.CanSign() != tt.canSign || k.ID() != tt.original.ID() {
				t.Fatalf("parsed key: alg %q sign %v kid %q; want %q %v %q", k.Alg(), k.CanSign(), k.ID(), tt.alg, tt.canSign, tt.original.ID())
			}
			clock := newClock(t0)
			signer, verifier := k, tt.original
			if !k.CanSign() {
				signer, verifier = tt.original, k
			}
			tok := issue(t, newService(t, clock, []*Key{signer}, nil), "pem", t0)
			if _, err := newService(t, clock, []*Key{verifier}, func(c *Config) {
				if !verifier.CanSign() {
					// A verify-only key cannot be first: put a throwaway
					// signer in front of it.
					c.Keys = []*Key{m.key(t, AlgHS256, "front"), verifier}
				}
			}).Verify(tok); err != nil {
				t.Fatalf("token signed by one form does not verify with the other: %v", err)
			}
			if k2, err := ParsePEM(tt.pem, "explicit"); err != nil || k2.ID() != "explicit" {
				t.Errorf("explicit kid: got %v, %v", k2, err)
			}
		})
	}
}

func TestParsePEMRefuses(t *testing.T) {
	m := genKeys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	edDER := pkcs8(m.ed)
	corrupt := edDER[:len(edDER)-5] // truncated DER
	ecDER, err := x509.MarshalECPrivateKey(m.ec)
	if err != nil {
		t.Fatal(err)
	}
	p384SEC1, err := x509.MarshalECPrivateKey(p384)
	tests := []struct {
		name  string
		data  []byte
		want  error
		inMsg string
	}{
		{"empty", nil, ErrUnsupportedKey, "no PEM block"},
		{"not PEM", []byte("-----hello-----"), ErrUnsupportedKey, "no PEM block"},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: edDER}), ErrUnsupportedKey, `"CERTIFICATE"`},
		{"RSA PUBLIC KEY", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&m.rsa.PublicKey)}), ErrUnsupportedKey, "not supported"},
		{"encrypted PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: edDER}), ErrUnsupportedKey, "encrypted"},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: edDER}), ErrUnsupportedKey, "encrypted"},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: corrupt}), ErrUnsupportedKey, "PKCS#8"},
		{"SEC 1 in PKCS#8 block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), ErrUnsupportedKey, "PKCS#8"},
		{"PKCS#8 in RSA block", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: edDER}), ErrUnsupportedKey, "PKCS#1"},
		{"PKCS#8 in EC block", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: edDER}), ErrUnsupportedKey, "SEC 1"},
		{"garbage public", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}), ErrUnsupportedKey, "PKIX"},
		{"P-384", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(p384)}), ErrUnsupportedKey, "P-384"},
		{"P-384 SEC 1", pemEncode(t, "EC PRIVATE KEY", p384SEC1, err), ErrUnsupportedKey, "P-384"},
		{"RSA 1024", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa1024)}), ErrWeakKey, "1024 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePEM(tt.data, "")
			if err == nil {
				t.Fatal("ParsePEM accepted it")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("error %q does not say %q", err, tt.inMsg)
			}
			// No key material in the message: no run of 12 characters from
			// the PEM body or its DER in base64 appears in it.
			if block, _ := pem.Decode(tt.data); block != nil {
				b64 := base64.StdEncoding.EncodeToString(block.Bytes)
				for i := 0; i+12 <= len(b64); i += 6 {
					if strings.Contains(err.Error(), b64[i:i+12]) {
						t.Fatalf("error %q contains key material", err)
					}
				}
			}
		})
	}
}
