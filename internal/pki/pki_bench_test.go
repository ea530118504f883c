package pki

import (
	"crypto/x509"
	"testing"
	"time"
)

// benchState issues a fresh CA and server certificate the way the
// certificates reconciler's first pass does.
func benchState(b *testing.B) (Files, Params) {
	b.Helper()
	names, err := NewSANs("registry.example", "198.18.0.10")
	if err != nil {
		b.Fatal(err)
	}
	p := Params{
		KeyAlgorithm:    ECDSAP256,
		CA:              CertParams{CommonName: "bench CA", Duration: 3650 * 24 * time.Hour, RenewBefore: 365 * 24 * time.Hour},
		Server:          CertParams{CommonName: "registry.example", Duration: 90 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour},
		Names:           names,
		RotationOverlap: 5 * time.Minute,
	}
	now := time.Now()
	m, bad := Parse(Files{})
	pl, err := Decide(Files{}, m, bad, p, now, &fakeGates{})
	if err != nil {
		b.Fatal(err)
	}
	next, _, err := pl.Apply(p, now)
	if err != nil {
		b.Fatal(err)
	}
	f, err := Encode(next)
	if err != nil {
		b.Fatal(err)
	}
	return f, p
}

// BenchmarkBuildBundle: the trust bundle of a CA rotation (old and new CA,
// plus a duplicate), built on every certificates pass.
func BenchmarkBuildBundle(b *testing.B) {
	f, _ := benchState(b)
	m, bad := Parse(f)
	if len(bad) > 0 {
		b.Fatal(bad)
	}
	renewed, err := RenewCA(m.CA, 3650*24*time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	certs := []*x509.Certificate{m.CA.Cert, renewed.Cert, m.CA.Cert}
	b.ReportAllocs()
	for b.Loop() {
		if len(BuildBundle(certs)) == 0 {
			b.Fatal("empty bundle")
		}
	}
}

// BenchmarkParseState: what every certificates reconcile pays to read the
// state set (parse and check the CA, key and server chain).
func BenchmarkParseState(b *testing.B) {
	f, _ := benchState(b)
	b.ReportAllocs()
	for b.Loop() {
		if m, bad := Parse(f); len(bad) > 0 || m.CA == nil {
			b.Fatalf("state does not parse: %v", bad)
		}
	}
}

// BenchmarkDecideInSync: a certificates pass with nothing to do.
func BenchmarkDecideInSync(b *testing.B) {
	f, p := benchState(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		m, bad := Parse(f)
		pl, err := Decide(f, m, bad, p, now, &fakeGates{})
		if err != nil || pl.Changes() {
			b.Fatalf("want an in-sync plan, got changes=%v err=%v", pl != nil && pl.Changes(), err)
		}
	}
}
