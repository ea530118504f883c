package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // RFC 5280 method 1 key identifier, not a signature
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Backdate is subtracted from NotBefore so that clients whose clocks run a
// little behind the operator's accept a fresh certificate.
const Backdate = time.Minute

// CertParams is one certificate's spec.
type CertParams struct {
	CommonName  string
	Duration    time.Duration
	RenewBefore time.Duration
}

// SANs are the names a server certificate must cover.
type SANs struct {
	DNSNames    []string
	IPAddresses []net.IP
}

// NewSANs normalises names and IPs (lower case, no trailing dot, canonical
// IP form, sorted, deduplicated). Each host is classified as IP or DNS the
// way cfssl does: what parses as an IP is an IP SAN.
func NewSANs(hosts ...string) (SANs, error) {
	var s SANs
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			s.IPAddresses = append(s.IPAddresses, ip)
			continue
		}
		d := strings.TrimSuffix(strings.ToLower(h), ".")
		if strings.ContainsAny(d, " /:@") {
			return SANs{}, fmt.Errorf("%q is neither an IP address nor a DNS name", h)
		}
		s.DNSNames = append(s.DNSNames, d)
	}
	slices.Sort(s.DNSNames)
	s.DNSNames = slices.Compact(s.DNSNames)
	slices.SortFunc(s.IPAddresses, func(a, b net.IP) int { return bytes.Compare(a, b) })
	s.IPAddresses = slices.CompactFunc(s.IPAddresses, net.IP.Equal)
	return s, nil
}

// Empty reports a certificate with no names at all.
func (s SANs) Empty() bool { return len(s.DNSNames) == 0 && len(s.IPAddresses) == 0 }

// Strings lists the names as text, DNS first.
func (s SANs) Strings() []string {
	out := slices.Clone(s.DNSNames)
	for _, ip := range s.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// SANsOf reads the names of a certificate, normalised like NewSANs.
func SANsOf(c *x509.Certificate) SANs {
	hosts := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	s, _ := NewSANs(hosts...)
	return s
}

// Equal compares two normalised name sets.
func (s SANs) Equal(o SANs) bool {
	return slices.Equal(s.DNSNames, o.DNSNames) && slices.EqualFunc(s.IPAddresses, o.IPAddresses, net.IP.Equal)
}

// KeyPair is a certificate and its private key, parsed and as PEM.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA creates a self-signed root with a fresh key.
func NewCA(alg KeyAlgorithm, p CertParams, now time.Time) (*KeyPair, error) {
	key, err := GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	return selfSign(key, pkix.Name{CommonName: p.CommonName, Organization: []string{"registry-operator"}}, nil, p.Duration, now)
}

// RenewCA re-signs the CA with its own key and subject, keeping its subject
// key id, so certificates it issued before still chain to the new one and
// every node's trust stays valid (cfssl -renewca semantics).
func RenewCA(ca *KeyPair, d time.Duration, now time.Time) (*KeyPair, error) {
	return selfSign(ca.Key, ca.Cert.Subject, ca.Cert.SubjectKeyId, d, now)
}

func selfSign(key crypto.Signer, subj pkix.Name, skid []byte, d time.Duration, now time.Time) (*KeyPair, error) {
	if skid == nil {
		var err error
		if skid, err = keyID(key.Public()); err != nil {
			return nil, err
		}
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subj,
		NotBefore:             now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(d).UTC().Truncate(time.Second),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          skid,
	}
	return sign(tmpl, tmpl, key.Public(), key, key)
}

// IssueServer signs a server certificate for names with a fresh key. Its
// NotAfter never passes the CA's: a leaf outliving its issuer fails anyway.
func IssueServer(ca *KeyPair, alg KeyAlgorithm, p CertParams, names SANs, now time.Time) (*KeyPair, error) {
	if names.Empty() {
		return nil, fmt.Errorf("no names for the server certificate: set registry.address (and registry.dnsNames/ipAddresses); clients reject certificates without SANs")
	}
	key, err := GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(p.Duration).UTC().Truncate(time.Second)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	cn := p.CommonName
	if cn == "" {
		cn = names.Strings()[0]
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              names.DNSNames,
		IPAddresses:           names.IPAddresses,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	kp, err := sign(tmpl, ca.Cert, key.Public(), ca.Key, key)
	if err != nil {
		return nil, err
	}
	// tls.crt is the leaf followed by its CA, what docker-registry serves.
	kp.CertPEM = append(kp.CertPEM, ca.CertPEM...)
	return kp, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer, key crypto.Signer) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: EncodeCert(cert), KeyPEM: keyPEM}, nil
}

// EncodeCert returns one "CERTIFICATE" PEM block.
func EncodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// keyID is the RFC 5280 §4.2.1.2 method 1 identifier. It is set explicitly
// rather than left to crypto/x509 so a renewed CA keeps the same value
// whatever method a later Go release defaults to.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // identifier, not security
	return sum[:], nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// RenewalTime is when a certificate is due for renewal, computed as
// cert-manager does: from its real lifetime, renewBefore ahead of NotAfter
// when renewBefore is shorter than the lifetime, otherwise two thirds of the
// way through.
func RenewalTime(notBefore, notAfter time.Time, renewBefore time.Duration) time.Time {
	life := notAfter.Sub(notBefore)
	before := life / 3
	if renewBefore > 0 && renewBefore < life {
		before = renewBefore
	}
	return notAfter.Add(-before).Truncate(time.Second)
}

// Serial formats a serial number the way openssl prints it.
func Serial(c *x509.Certificate) string { return strings.ToUpper(c.SerialNumber.Text(16)) }
