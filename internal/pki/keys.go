// Package pki holds the operator's certificate logic: key generation, CA and
// server issuance, renewal times, CA rotation, verification of the state set
// and the store that keeps it. Everything except the store is pure: time
// comes in as an argument, files come in as bytes.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// KeyAlgorithm is a tls.keyAlgorithm value.
type KeyAlgorithm string

// Supported key algorithms.
const (
	ECDSAP256 KeyAlgorithm = "ECDSA-P256"
	ECDSAP384 KeyAlgorithm = "ECDSA-P384"
	RSA2048   KeyAlgorithm = "RSA-2048"
	RSA3072   KeyAlgorithm = "RSA-3072"
	RSA4096   KeyAlgorithm = "RSA-4096"
)

// KeyAlgorithms lists every supported value, for validation messages.
var KeyAlgorithms = []KeyAlgorithm{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}

// ParseKeyAlgorithm checks a spec value.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	for _, a := range KeyAlgorithms {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown key algorithm %q: use one of %v", s, KeyAlgorithms)
}

// GenerateKey creates a private key of algorithm a.
func GenerateKey(a KeyAlgorithm) (crypto.Signer, error) {
	switch a {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key algorithm %q: use one of %v", a, KeyAlgorithms)
}

// AlgorithmOf names the algorithm of a public key ("" when unsupported).
func AlgorithmOf(pub crypto.PublicKey) KeyAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256
		case elliptic.P384():
			return ECDSAP384
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	}
	return ""
}

// EncodeKey returns the key as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads one PEM private key: PKCS#8, or the PKCS#1 and SEC 1
// forms openssl and cfssl write, so hand-made CAs can be adopted.
func ParseKey(b []byte) (crypto.Signer, error) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block (empty or truncated file)")
	}
	if len(bytesTrim(rest)) != 0 {
		return nil, errors.New("unexpected data after the private key")
	}
	var (
		k   any
		err error
	)
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key (truncated or damaged?): %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok || AlgorithmOf(s.Public()) == "" {
		return nil, fmt.Errorf("unsupported private key type %T: use one of %v", k, KeyAlgorithms)
	}
	return s, nil
}

// KeyMatches reports whether key is the private half of pub.
func KeyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}

func bytesTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
