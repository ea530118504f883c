package pki

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeProvided(t *testing.T, cert, key, ca []byte) ProvidedFiles {
	t.Helper()
	dir := t.TempDir()
	pf := ProvidedFiles{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), CAFile: filepath.Join(dir, "ca.crt")}
	for p, b := range map[string][]byte{pf.CertFile: cert, pf.KeyFile: key, pf.CAFile: ca} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return pf
}

func TestLoadProvided(t *testing.T) {
	names := mustSANs(t, "registry.example", "198.18.0.10")
	ca, _ := NewCA(ECDSAP256, CertParams{CommonName: "corp CA", Duration: 1000 * time.Hour}, t0)
	srv, _ := IssueServer(ca, ECDSAP256, CertParams{Duration: 100 * time.Hour}, names, t0)
	leafOnly := EncodeCert(srv.Cert)
	other, _ := NewCA(ECDSAP256, CertParams{CommonName: "other CA", Duration: 1000 * time.Hour}, t0)
	otherSrv, _ := IssueServer(ca, ECDSAP256, CertParams{Duration: 100 * time.Hour}, mustSANs(t, "registry.example"), t0)

	p, err := LoadProvided(writeProvided(t, leafOnly, srv.KeyPEM, ca.CertPEM), names, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Bundle) != string(ca.CertPEM) || Serial(p.Server.Cert) != Serial(srv.Cert) {
		t.Fatal("bundle must be the CA file's CAs and the server the provided certificate")
	}

	for _, tc := range []struct {
		name          string
		cert, key, ca []byte
		at            time.Time
		file, want    string
	}{
		{"key of another certificate", leafOnly, other.KeyPEM, ca.CertPEM, t0.Add(time.Hour), "tls.key", "does not match"},
		{"truncated key", leafOnly, srv.KeyPEM[:50], ca.CertPEM, t0.Add(time.Hour), "tls.key", "truncated"},
		{"chain does not verify", leafOnly, srv.KeyPEM, other.CertPEM, t0.Add(time.Hour), "tls.crt", "does not verify"},
		{"missing SAN", EncodeCert(otherSrv.Cert), otherSrv.KeyPEM, ca.CertPEM, t0.Add(time.Hour), "tls.crt", "198.18.0.10"},
		{"expired", leafOnly, srv.KeyPEM, ca.CertPEM, t0.Add(200 * time.Hour), "tls.crt", "expired"},
		{"not yet valid", leafOnly, srv.KeyPEM, ca.CertPEM, t0.Add(-time.Hour), "tls.crt", "clock"},
		{"CA file holds a leaf", leafOnly, srv.KeyPEM, append(append([]byte{}, ca.CertPEM...), leafOnly...), t0.Add(time.Hour), "ca.crt", "not a CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadProvided(writeProvided(t, tc.cert, tc.key, tc.ca), names, tc.at)
			var pe *ProvidedError
			if !errors.As(err, &pe) || filepath.Base(pe.File) != tc.file || !strings.Contains(pe.Reason, tc.want) {
				t.Fatalf("err = %v, want %s: ...%s", err, tc.file, tc.want)
			}
		})
	}
	_, err = LoadProvided(ProvidedFiles{CertFile: "/nonexistent/tls.crt"}, names, t0)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/tls.crt") {
		t.Fatalf("unreadable file: %v", err)
	}
}
