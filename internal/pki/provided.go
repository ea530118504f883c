package pki

import (
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ProvidedFiles names certificate files issued elsewhere (tls.mode: provided).
type ProvidedFiles struct {
	CertFile string // server certificate, then any intermediates
	KeyFile  string
	CAFile   string // the roots clients must trust
}

// Provided is a validated provided certificate.
type Provided struct {
	Server *KeyPair // CertPEM is CertFile as read
	Chain  []*x509.Certificate
	CAs    []*x509.Certificate
	Bundle []byte
}

// ProvidedError is a provided file that cannot be served, with the fix.
type ProvidedError struct {
	File   string
	Reason string
}

func (e *ProvidedError) Error() string { return e.File + ": " + e.Reason }

// LoadProvided reads and validates provided files: the key matches, the
// chain verifies to the CA file, the names cover every name clients use,
// and the certificate is valid now. The operator never writes these files.
func LoadProvided(pf ProvidedFiles, names SANs, now time.Time) (*Provided, error) {
	read := func(p string) ([]byte, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, &ProvidedError{File: p, Reason: fmt.Sprintf("cannot read: %v (check tls.provided and the file's permissions)", err)}
		}
		return b, nil
	}
	certPEM, err := read(pf.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(pf.KeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(pf.CAFile)
	if err != nil {
		return nil, err
	}
	chain, err := ParseCerts(certPEM)
	if err != nil {
		return nil, &ProvidedError{File: pf.CertFile, Reason: err.Error()}
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, &ProvidedError{File: pf.KeyFile, Reason: err.Error()}
	}
	cas, err := ParseCerts(caPEM)
	if err != nil {
		return nil, &ProvidedError{File: pf.CAFile, Reason: err.Error()}
	}
	leaf := chain[0]
	if !KeyMatches(key, leaf.PublicKey) {
		return nil, &ProvidedError{File: pf.KeyFile, Reason: "does not match the first certificate in " + pf.CertFile +
			" (the public keys differ): provide the key the certificate was issued for"}
	}
	if leaf.NotBefore.After(now) {
		return nil, &ProvidedError{File: pf.CertFile, Reason: (&ClockSkewError{File: "the certificate", NotBefore: leaf.NotBefore, Now: now}).Error()}
	}
	if !now.Before(leaf.NotAfter) {
		return nil, &ProvidedError{File: pf.CertFile, Reason: "expired at " + ts(leaf.NotAfter) + ": replace it with a renewed certificate"}
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, &ProvidedError{File: pf.CertFile, Reason: fmt.Sprintf("does not verify against %s: %v "+
			"(put intermediates after the certificate in %s and the root in %s)", pf.CAFile, err, pf.CertFile, pf.CAFile)}
	}
	if names.Empty() {
		return nil, &ProvidedError{File: pf.CertFile, Reason: "registry.address is not set, so the names it must cover are unknown"}
	}
	var missing []string
	for _, h := range names.Strings() {
		if err := leaf.VerifyHostname(h); err != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		return nil, &ProvidedError{File: pf.CertFile, Reason: fmt.Sprintf("lacks subjectAltName entries for %s "+
			"(it has %v): have it reissued with those names", strings.Join(missing, ", "), SANsOf(leaf).Strings())}
	}
	if slices.ContainsFunc(cas, func(c *x509.Certificate) bool { return !c.IsCA }) {
		return nil, &ProvidedError{File: pf.CAFile, Reason: "holds a certificate that is not a CA; nodes must trust only CAs"}
	}
	return &Provided{
		Server: &KeyPair{Cert: leaf, Key: key, CertPEM: certPEM, KeyPEM: keyPEM},
		Chain:  chain, CAs: cas, Bundle: BuildBundle(cas),
	}, nil
}
