package platform

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParseRSAPrivateKey reads the app's RSA private key for Alipay: PEM
// (PKCS #1 or PKCS #8), or the bare base64 text Alipay's key tool gives.
func ParseRSAPrivateKey(data []byte) (*rsa.PrivateKey, error) {
	der, err := keyDER(data, "PRIVATE KEY", "RSA PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not an RSA private key (PKCS #1 or PKCS #8)")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an RSA private key", k)
	}
	return rk, nil
}

// ParseRSAPublicKey reads an RSA public key for Alipay: PEM (PKIX or
// PKCS #1), or the bare base64 text Alipay's console shows.
func ParseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	der, err := keyDER(data, "PUBLIC KEY", "RSA PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not an RSA public key (PKIX or PKCS #1)")
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an RSA public key", k)
	}
	return rk, nil
}

// keyDER returns the DER of the first PEM block of one of the types, or
// decodes data as bare base64 when it holds no PEM block.
func keyDER(data []byte, types ...string) ([]byte, error) {
	if b, _ := pem.Decode(data); b != nil {
		for _, t := range types {
			if b.Type == t {
				return b.Bytes, nil
			}
		}
		return nil, fmt.Errorf("PEM block %q, want %s", b.Type, strings.Join(types, " or "))
	}
	s := strings.Join(strings.Fields(string(data)), "")
	if s == "" {
		return nil, errors.New("empty key")
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("neither PEM nor base64")
	}
	return der, nil
}
