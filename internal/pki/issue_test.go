package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func mustSANs(t *testing.T, hosts ...string) SANs {
	t.Helper()
	s, err := NewSANs(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSANsClassifiesAndNormalises(t *testing.T) {
	s := mustSANs(t, "Registry.Example.", "198.18.0.10", "registry.example", "::1", "[::1]", "", "127.0.0.1")
	if got := s.DNSNames; len(got) != 1 || got[0] != "registry.example" {
		t.Fatalf("DNSNames = %v", got)
	}
	if len(s.IPAddresses) != 3 || !s.IPAddresses[1].Equal(net.ParseIP("127.0.0.1")) || len(s.IPAddresses[1]) != 4 {
		t.Fatalf("IPAddresses = %v", s.IPAddresses)
	}
	if _, err := NewSANs("registry.example:5000"); err == nil {
		t.Fatal("a host:port must be rejected as a name")
	}
}

func TestEveryKeyAlgorithmIssuesAVerifiableChain(t *testing.T) {
	names := mustSANs(t, "registry.example", "198.18.0.10")
	for _, alg := range KeyAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			ca, err := NewCA(alg, CertParams{CommonName: "test CA", Duration: 24 * time.Hour}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got := AlgorithmOf(ca.Cert.PublicKey); got != alg {
				t.Fatalf("CA key is %s", got)
			}
			srv, err := IssueServer(ca, alg, CertParams{CommonName: "registry.example", Duration: time.Hour}, names, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got := AlgorithmOf(srv.Cert.PublicKey); got != alg {
				t.Fatalf("server key is %s", got)
			}
			if r := ChainsTo(srv.Cert, ca.Cert); r != "" {
				t.Fatal(r)
			}
			k, err := ParseKey(srv.KeyPEM)
			if err != nil || !KeyMatches(k, srv.Cert.PublicKey) {
				t.Fatalf("encoded key does not round-trip: %v", err)
			}
		})
	}
}

func TestCAAndServerCertificateContents(t *testing.T) {
	ca, err := NewCA(ECDSAP256, CertParams{CommonName: "my CA", Duration: 48 * time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero || c.Subject.CommonName != "my CA" {
		t.Fatalf("CA constraints/subject wrong: %+v", c.Subject)
	}
	if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("CA key usage %b", c.KeyUsage)
	}
	if len(c.SubjectKeyId) != 20 {
		t.Fatalf("SKID %X", c.SubjectKeyId)
	}
	names := mustSANs(t, "registry.example", "alias.example", "198.18.0.10")
	srv, err := IssueServer(ca, ECDSAP256, CertParams{CommonName: "registry.example", Duration: 72 * time.Hour}, names, t0)
	if err != nil {
		t.Fatal(err)
	}
	l := srv.Cert
	if l.IsCA || len(l.ExtKeyUsage) != 1 || l.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("leaf EKU %v IsCA %v", l.ExtKeyUsage, l.IsCA)
	}
	if !SANsOf(l).Equal(names) || l.Subject.CommonName != "registry.example" {
		t.Fatalf("leaf names %v CN %q", SANsOf(l).Strings(), l.Subject.CommonName)
	}
	if !bytes.Equal(l.AuthorityKeyId, c.SubjectKeyId) {
		t.Fatal("AKI does not name the CA")
	}
	// The server certificate asked to outlive its CA ends with it.
	if !l.NotAfter.Equal(c.NotAfter) {
		t.Fatalf("leaf NotAfter %v, CA NotAfter %v", l.NotAfter, c.NotAfter)
	}
	chain, err := ParseCerts(srv.CertPEM)
	if err != nil || len(chain) != 2 || !bytes.Equal(chain[1].Raw, c.Raw) {
		t.Fatalf("tls.crt must be leaf then CA: %v, %d certs", err, len(chain))
	}
	if _, err := IssueServer(ca, ECDSAP256, CertParams{Duration: time.Hour}, SANs{}, t0); err == nil {
		t.Fatal("a server certificate without names must be refused")
	}
}

func TestRenewCAKeepsTrustInOldLeaves(t *testing.T) {
	ca, _ := NewCA(ECDSAP256, CertParams{CommonName: "ca", Duration: 10 * time.Hour}, t0)
	names := mustSANs(t, "registry.example")
	leaf, _ := IssueServer(ca, ECDSAP256, CertParams{Duration: 10 * time.Hour}, names, t0)
	renewed, err := RenewCA(ca, 10*time.Hour, t0.Add(8*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(renewed.Cert.SubjectKeyId, ca.Cert.SubjectKeyId) || renewed.Cert.Subject.String() != ca.Cert.Subject.String() {
		t.Fatal("renewal must keep subject and key id")
	}
	if renewed.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 || !renewed.Cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatal("renewal must produce a new, later certificate")
	}
	// A node that has only the renewed CA still verifies the old leaf.
	roots := x509.NewCertPool()
	roots.AddCert(renewed.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "registry.example", CurrentTime: t0.Add(9 * time.Hour)}); err != nil {
		t.Fatalf("old leaf against renewed CA: %v", err)
	}
}

func TestRenewalTime(t *testing.T) {
	nb := t0
	for _, tc := range []struct {
		name        string
		life        time.Duration
		renewBefore time.Duration
		want        time.Duration // after NotBefore
	}{
		{"renewBefore shorter than lifetime", 90 * 24 * time.Hour, 30 * 24 * time.Hour, 60 * 24 * time.Hour},
		{"renewBefore longer than lifetime: two thirds", 3 * time.Hour, 5 * time.Hour, 2 * time.Hour},
		{"renewBefore equal to lifetime: two thirds", 3 * time.Minute, 3 * time.Minute, 2 * time.Minute},
		{"renewBefore unset: two thirds", 9 * time.Hour, 0, 6 * time.Hour},
		{"short-lived", 3 * time.Minute, time.Minute, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenewalTime(nb, nb.Add(tc.life), tc.renewBefore); !got.Equal(nb.Add(tc.want)) {
				t.Fatalf("RenewalTime = %v, want %v", got, nb.Add(tc.want))
			}
		})
	}
}

func TestParseKeyRejectsDamage(t *testing.T) {
	ca, _ := NewCA(ECDSAP256, CertParams{CommonName: "ca", Duration: time.Hour}, t0)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": ca.KeyPEM[:len(ca.KeyPEM)/2],
		"cert":      ca.CertPEM,
		"trailing":  append(append([]byte{}, ca.KeyPEM...), []byte("garbage")...),
	} {
		if _, err := ParseKey(b); err == nil {
			t.Errorf("%s: ParseKey accepted it", name)
		}
	}
}
