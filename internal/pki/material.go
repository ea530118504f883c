package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// File names of the state set. ca.* signs the served certificate; during a
// rotation next-ca.* is the CA being introduced and prev-ca.crt the one
// being retired.
const (
	FileCACert     = "ca.crt"
	FileCAKey      = "ca.key"
	FileServerCert = "tls.crt"
	FileServerKey  = "tls.key"
	FileBundle     = "trust-bundle.crt"
	FileNextCACert = "next-ca.crt"
	FileNextCAKey  = "next-ca.key"
	FilePrevCACert = "prev-ca.crt"
	FileState      = "state.json"
	// FilePullPassword is the pull password's state (internal/pullsecret),
	// kept by the pullsecret reconciler, not by the certificates one. Its
	// ".key" suffix gets it the private keys' protection in every store.
	FilePullPassword = "pull-password.key"
	// FileGCWindow is the open garbage-collection window's record
	// (internal/gcwindow), kept by the maintenance reconciler.
	FileGCWindow = "gc-window.json"
)

// CertificateFiles are the names the certificate reconciler keeps.
var CertificateFiles = []string{FileCACert, FileCAKey, FileServerCert, FileServerKey, FileBundle,
	FileNextCACert, FileNextCAKey, FilePrevCACert, FileState}

// PullPasswordFiles are the names the pullsecret reconciler keeps.
var PullPasswordFiles = []string{FilePullPassword}

// KnownFiles lists every name a state set may hold.
var KnownFiles = append(append(append([]string{}, CertificateFiles...), PullPasswordFiles...), GCWindowFiles...)

// GCWindowFiles are the names the maintenance reconciler keeps.
var GCWindowFiles = []string{FileGCWindow}

// IsKeyFile reports names that hold private keys (mode 0600).
func IsKeyFile(name string) bool { return strings.HasSuffix(name, ".key") }

// Files is a whole state set: name to content. It is the unit the Store
// reads and writes atomically.
type Files map[string][]byte

// Equal compares two sets byte for byte.
func (f Files) Equal(o Files) bool { return maps.EqualFunc(f, o, bytes.Equal) }

// Rotation phases.
const (
	// PhasePublishing: the new CA is in the bundle next to the old one; the
	// served certificate is still the old CA's.
	PhasePublishing = "publishing"
	// PhaseRetiring: the served certificate is the new CA's; the old CA
	// stays in the bundle until the old certificate can no longer be served.
	PhaseRetiring = "retiring"
)

// Rotation records a CA rotation under way.
type Rotation struct {
	Phase  string    `json:"phase"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	// OldServerNotAfter is when the certificate signed by the retiring CA
	// expires; after it nothing can depend on that CA.
	OldServerNotAfter time.Time `json:"oldServerNotAfter,omitzero"`
	// SwitchGeneration is the generation that first served the new CA's
	// certificate.
	SwitchGeneration int64 `json:"switchGeneration,omitempty"`
}

// Meta is state.json.
type Meta struct {
	// Generation increases each time the served certificate changes.
	Generation int64     `json:"generation"`
	Rotation   *Rotation `json:"rotation,omitempty"`
}

// Material is a parsed state set. Absent parts are nil.
type Material struct {
	CA     *KeyPair
	Next   *KeyPair
	Prev   *x509.Certificate
	Server *KeyPair // Cert is the leaf; CertPEM the whole tls.crt
	// Chain is tls.crt parsed: the leaf, then its CA.
	Chain []*x509.Certificate
	Meta  Meta
}

// CorruptError is state that cannot be used as it is and must not be
// replaced without the operator being told to: File names the file.
type CorruptError struct {
	File   string
	Reason string
}

func (e *CorruptError) Error() string { return e.File + ": " + e.Reason }

// Corruption collects every CorruptError of a set.
type Corruption []*CorruptError

func (c Corruption) Error() string {
	parts := make([]string, len(c))
	for i, e := range c {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Has reports whether any named file is corrupt.
func (c Corruption) Has(names ...string) bool {
	return slices.ContainsFunc(c, func(e *CorruptError) bool { return slices.Contains(names, e.File) })
}

// Parse reads a set. Parts that do not parse, keys that do not match their
// certificate and inconsistent rotation records are returned as Corruption
// next to whatever did parse (the corrupt parts are nil in Material).
// Missing parts are not corruption, except a CA certificate without its key
// or the reverse: that CA could neither sign nor be replaced silently.
func Parse(f Files) (*Material, Corruption) {
	var bad Corruption
	fail := func(file, format string, a ...any) {
		bad = append(bad, &CorruptError{File: file, Reason: fmt.Sprintf(format, a...)})
	}
	m := &Material{}
	m.CA = parseCA(f, FileCACert, FileCAKey, fail)
	m.Next = parseCA(f, FileNextCACert, FileNextCAKey, fail)
	if b, ok := f[FilePrevCACert]; ok {
		certs, err := ParseCerts(b)
		switch {
		case err != nil:
			fail(FilePrevCACert, "%v", err)
		case len(certs) != 1:
			fail(FilePrevCACert, "holds %d certificates, want 1", len(certs))
		default:
			m.Prev = certs[0]
		}
	}
	if b, ok := f[FileState]; ok {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m.Meta); err != nil {
			fail(FileState, "cannot parse: %v", err)
			m.Meta = Meta{}
		}
	}
	m.Server, m.Chain = parseServer(f, fail)
	checkRotation(m, f, fail)
	return m, bad
}

func parseCA(f Files, certName, keyName string, fail func(string, string, ...any)) *KeyPair {
	cb, hasCert := f[certName]
	kb, hasKey := f[keyName]
	switch {
	case !hasCert && !hasKey:
		return nil
	case !hasKey:
		fail(keyName, "missing while %s exists: this CA can no longer sign; restore %s from a backup", certName, keyName)
		return nil
	case !hasCert:
		fail(certName, "missing while %s exists: restore %s from a backup", keyName, certName)
		return nil
	}
	certs, err := ParseCerts(cb)
	if err != nil {
		fail(certName, "%v", err)
		return nil
	}
	if len(certs) != 1 {
		fail(certName, "holds %d certificates, want exactly the CA", len(certs))
		return nil
	}
	c := certs[0]
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		fail(certName, "%q is not a CA certificate (basicConstraints CA:TRUE and keyUsage keyCertSign are required)", c.Subject.String())
		return nil
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		fail(certName, "%q is not self-signed: %v", c.Subject.String(), err)
		return nil
	}
	key, err := ParseKey(kb)
	if err != nil {
		fail(keyName, "%v", err)
		return nil
	}
	if !KeyMatches(key, c.PublicKey) {
		fail(keyName, "does not match %s (the public keys differ)", certName)
		return nil
	}
	return &KeyPair{Cert: c, Key: key, CertPEM: cb, KeyPEM: kb}
}

func parseServer(f Files, fail func(string, string, ...any)) (*KeyPair, []*x509.Certificate) {
	cb, hasCert := f[FileServerCert]
	kb, hasKey := f[FileServerKey]
	if !hasCert || !hasKey {
		return nil, nil // reissued from the CA; nothing of trust is lost
	}
	chain, err := ParseCerts(cb)
	if err != nil {
		fail(FileServerCert, "%v", err)
		return nil, nil
	}
	key, err := ParseKey(kb)
	if err != nil {
		fail(FileServerKey, "%v", err)
		return nil, nil
	}
	if !KeyMatches(key, chain[0].PublicKey) {
		fail(FileServerKey, "does not match the first certificate in %s (the public keys differ)", FileServerCert)
		return nil, nil
	}
	return &KeyPair{Cert: chain[0], Key: key, CertPEM: cb, KeyPEM: kb}, chain
}

func checkRotation(m *Material, f Files, fail func(string, string, ...any)) {
	phase := ""
	if m.Meta.Rotation != nil {
		phase = m.Meta.Rotation.Phase
	}
	_, hasNext := f[FileNextCACert]
	_, hasPrev := f[FilePrevCACert]
	switch phase {
	case "":
		if hasNext || hasPrev {
			fail(FileState, "records no CA rotation but %s/%s exist", FileNextCACert, FilePrevCACert)
		}
	case PhasePublishing:
		if !hasNext || hasPrev {
			fail(FileState, "records rotation phase %q, which needs %s and no %s", phase, FileNextCACert, FilePrevCACert)
		}
	case PhaseRetiring:
		if !hasPrev || hasNext {
			fail(FileState, "records rotation phase %q, which needs %s and no %s", phase, FilePrevCACert, FileNextCACert)
		}
	default:
		fail(FileState, "unknown rotation phase %q", phase)
	}
}

// Encode renders m as a state set, with the trust bundle derived from the
// CAs nodes must trust in m's phase.
func Encode(m *Material) (Files, error) {
	f := Files{}
	if m.CA != nil {
		f[FileCACert], f[FileCAKey] = m.CA.CertPEM, m.CA.KeyPEM
	}
	if m.Next != nil {
		f[FileNextCACert], f[FileNextCAKey] = m.Next.CertPEM, m.Next.KeyPEM
	}
	if m.Prev != nil {
		f[FilePrevCACert] = EncodeCert(m.Prev)
	}
	if m.Server != nil {
		f[FileServerCert], f[FileServerKey] = m.Server.CertPEM, m.Server.KeyPEM
	}
	if b := m.Bundle(); len(b) > 0 {
		f[FileBundle] = b
	}
	meta, err := json.MarshalIndent(m.Meta, "", "  ")
	if err != nil {
		return nil, err
	}
	f[FileState] = append(meta, '\n')
	return f, nil
}

// TrustedCAs are the CAs nodes must trust now.
func (m *Material) TrustedCAs() []*x509.Certificate {
	var out []*x509.Certificate
	for _, kp := range []*KeyPair{m.CA, m.Next} {
		if kp != nil {
			out = append(out, kp.Cert)
		}
	}
	if m.Prev != nil {
		out = append(out, m.Prev)
	}
	return out
}

// Bundle is trust-bundle.crt for m.
func (m *Material) Bundle() []byte { return BuildBundle(m.TrustedCAs()) }

// BuildBundle concatenates certificates deduplicated by the SHA-256 of
// their DER and sorted by it (as trust-manager does), so the same CAs
// always give the same bytes and hash, whatever their order or history.
func BuildBundle(certs []*x509.Certificate) []byte {
	type entry struct {
		sum [32]byte
		c   *x509.Certificate
	}
	var es []entry
	for _, c := range certs {
		es = append(es, entry{sha256.Sum256(c.Raw), c})
	}
	slices.SortFunc(es, func(a, b entry) int { return bytes.Compare(a.sum[:], b.sum[:]) })
	es = slices.CompactFunc(es, func(a, b entry) bool { return a.sum == b.sum })
	var out []byte
	for _, e := range es {
		out = append(out, EncodeCert(e.c)...)
	}
	return out
}

// ParseCerts reads one or more "CERTIFICATE" PEM blocks and nothing else:
// a stray private key or trailing garbage is an error, never ignored.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := b
	for {
		rest = bytesTrim(rest)
		if len(rest) == 0 {
			break
		}
		blk, r := pem.Decode(rest)
		if blk == nil {
			if len(out) == 0 {
				return nil, errors.New("no PEM certificate (empty or truncated file)")
			}
			return nil, fmt.Errorf("data after certificate %d is not PEM (truncated file?)", len(out))
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(out)+1, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
		rest = r
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate (empty file)")
	}
	return out, nil
}

// ChainsTo reports why leaf is not issued by ca ("" when it is): the
// authority key id must name the CA's subject key id and the signature must
// verify with the CA's key.
func ChainsTo(leaf, ca *x509.Certificate) string {
	if len(leaf.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 && !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) {
		return fmt.Sprintf("authority key id %X is not the CA's subject key id %X", leaf.AuthorityKeyId, ca.SubjectKeyId)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return fmt.Sprintf("not signed by CA %q: %v", ca.Subject.String(), err)
	}
	return ""
}

// Verify checks the set is usable as a whole: the served chain verifies
// against the trust bundle for its names at time now. It is what a client
// trusting trust-bundle.crt would conclude.
func Verify(m *Material, names SANs, now time.Time) error {
	if m.CA == nil || m.Server == nil {
		return errors.New("incomplete set: a CA and a server certificate are required")
	}
	roots := x509.NewCertPool()
	for _, c := range m.TrustedCAs() {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range m.Chain[1:] {
		inter.AddCert(c)
	}
	for _, h := range names.Strings() {
		if _, err := m.Server.Cert.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, Intermediates: inter,
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("%s does not verify for %q against %s: %w", FileServerCert, h, FileBundle, err)
		}
	}
	return nil
}
