// Package registrytest runs Debian's real docker-registry on loopback for
// tests of what the operator writes for it (its config file, htpasswd
// files, client credentials): the registry itself is the judge of whether
// those files work.
package registrytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/logbuf"

	"github.com/registry-operator/registry-operator/internal/pki"
)

// Binary is Debian's docker-registry (package docker-registry).
const Binary = "/usr/bin/docker-registry"

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close probe listener: %v", err)
	}
	return addr
}

// TLSFiles is a CA and a server certificate for 127.0.0.1 written to a
// directory.
type TLSFiles struct {
	Cert, Key string // tls.crt (leaf + CA) and tls.key
	CADir     string // a directory holding only ca.crt (skopeo --cert-dir)
	Pool      *x509.CertPool
}

// WriteTLS issues a CA and a server certificate for 127.0.0.1 into dir.
func WriteTLS(t testing.TB, dir string) TLSFiles {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(pki.ECDSAP256, pki.CertParams{CommonName: "registrytest CA", Duration: time.Hour}, now)
	if err != nil {
		t.Fatalf("issue CA: %v", err)
	}
	names, err := pki.NewSANs("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.IssueServer(ca, pki.ECDSAP256, pki.CertParams{Duration: time.Hour}, names, now)
	if err != nil {
		t.Fatalf("issue server certificate: %v", err)
	}
	f := TLSFiles{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"),
		CADir: filepath.Join(dir, "ca"), Pool: x509.NewCertPool()}
	f.Pool.AddCert(ca.Cert)
	write(t, f.Cert, srv.CertPEM, 0o644)
	write(t, f.Key, srv.KeyPEM, 0o600)
	if err := os.MkdirAll(f.CADir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.CADir, "ca.crt"), ca.CertPEM, 0o644)
	return f
}

// Client returns an HTTPS client trusting only f's CA.
func (f TLSFiles) Client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.Pool, MinVersion: tls.VersionTLS12}}}
}

func write(t testing.TB, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

// Process is a running docker-registry.
type Process struct {
	log logbuf.Buffer
}

// Log returns what the registry printed so far.
func (p *Process) Log() string { return p.log.String() }

// Start runs `docker-registry serve configPath` and waits until addr (the
// config's http.addr) accepts connections. The process is killed when the
// test ends, passed or failed, and its output is logged on failure. The
// environment is emptied so no REGISTRY_* variable of the caller's
// overrides the file under test.
func Start(t testing.TB, configPath, addr string) *Process {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("docker-registry is not installed (Debian package docker-registry): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{}
	cmd := exec.CommandContext(ctx, Binary, "serve", configPath)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel() // kills the process
		<-exited
		if t.Failed() {
			t.Logf("docker-registry output:\n%s", p.Log())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return p
		}
		select {
		case <-exited:
			t.Fatalf("docker-registry exited before listening on %s:\n%s", addr, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not listen on %s within 30s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
