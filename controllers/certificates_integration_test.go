package controllers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/state"
)

const registryBinary = "/usr/bin/docker-registry"

// startRegistry runs the real docker-registry on loopback with the given
// certificate files and returns its address.
func startRegistry(t *testing.T, certFile, keyFile string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
`, filepath.Join(dir, "data"), addr, certFile, keyFile)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(registryBinary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for i := 0; i < 200; i++ {
		select {
		case err := <-exited:
			t.Fatalf("docker-registry exited: %v\n%s", err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not listen on %s\n%s", addr, out.String())
	return ""
}

// TestCertificatesServedByDockerRegistry issues certificates with the
// reconciler, serves them with the real docker-registry and connects by
// every SAN trusting only ca.crt, with Go and with openssl s_client.
func TestCertificatesServedByDockerRegistry(t *testing.T) {
	if _, err := os.Stat(registryBinary); err != nil {
		t.Skipf("needs %s (Debian package docker-registry): %v", registryBinary, err)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("needs openssl (Debian package openssl)")
	}
	for _, alg := range []pki.KeyAlgorithm{pki.ECDSAP256, pki.RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			reg := &v1alpha1.Registry{Spec: v1alpha1.Spec{
				Registry: &v1alpha1.RegistryEndpoint{Address: "registry.example:5000", DNSNames: []string{"alias.example"},
					IPAddresses: []string{"127.0.0.1", "198.18.0.10"}},
				TLS: &v1alpha1.TLSSpec{StateDir: dir, KeyAlgorithm: string(alg)},
			}}
			v1alpha1.Default(reg)
			st := state.New()
			rec := NewCertificates(Deps{Spec: func() *v1alpha1.Spec { return &reg.Spec }, Store: st,
				Metrics: metrics.New(metrics.BuildInfo{}), Clock: clock.RealClock{}, Log: logr.Discard()}, CertificatesOptions{})
			if _, err := rec.Reconcile(context.Background(), CertificatesKey); err != nil {
				t.Fatal(err)
			}
			caFile := filepath.Join(dir, pki.FileCACert)
			addr := startRegistry(t, filepath.Join(dir, pki.FileServerCert), filepath.Join(dir, pki.FileServerKey))
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(caPEM)
			serial := st.PKI().Server.Serial
			sans := []string{"registry.example", "alias.example", "127.0.0.1", "198.18.0.10"}
			for _, san := range sans {
				t.Run(san, func(t *testing.T) {
					goClient(t, addr, san, roots, serial)
					sClient(t, openssl, addr, san, caFile, true)
				})
			}
			// The checks can fail: a name the certificate lacks is refused.
			sClient(t, openssl, addr, "wrong.example", caFile, false)
			cfg := &tls.Config{RootCAs: roots, ServerName: "wrong.example"}
			if c, err := tls.Dial("tcp", addr, cfg); err == nil {
				c.Close()
				t.Fatal("Go TLS accepted a name the certificate does not carry")
			}
		})
	}
}

func goClient(t *testing.T, addr, san string, roots *x509.CertPool, serial string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: san}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr) // every name resolves to loopback here
		},
	}}
	host := san
	if ip := net.ParseIP(san); ip != nil && ip.To4() == nil {
		host = "[" + san + "]"
	}
	resp, err := hc.Get("https://" + host + "/v2/")
	if err != nil {
		t.Fatalf("Go TLS by %s: %v", san, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ by %s: %s", san, resp.Status)
	}
	if got := pki.Serial(resp.TLS.PeerCertificates[0]); got != serial {
		t.Fatalf("served serial %s, published %s", got, serial)
	}
}

func sClient(t *testing.T, openssl, addr, san, caFile string, wantOK bool) {
	t.Helper()
	args := []string{"s_client", "-connect", addr, "-servername", san, "-verify_return_error", "-CAfile", caFile}
	if net.ParseIP(san) != nil {
		args = append(args, "-verify_ip", san)
	} else {
		args = append(args, "-verify_hostname", san)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	ok := err == nil && bytes.Contains(out, []byte("Verify return code: 0 (ok)"))
	if ok != wantOK {
		t.Fatalf("openssl s_client by %s: ok=%v, want %v: %v\n%s", san, ok, wantOK, err, out)
	}
}

// TestCertificatesRotationKeepsClientsVerifying rotates the CA key while
// docker-registry serves, and checks at every phase that a client trusting
// what nodes carry (the previous or the current trust-bundle.crt) verifies
// whatever the registry serves, before and after its restart.
func TestCertificatesRotationKeepsClientsVerifying(t *testing.T) {
	if _, err := os.Stat(registryBinary); err != nil {
		t.Skipf("needs %s (Debian package docker-registry): %v", registryBinary, err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	reg := &v1alpha1.Registry{Spec: v1alpha1.Spec{
		Registry: &v1alpha1.RegistryEndpoint{Address: "registry.example:5000", IPAddresses: []string{"127.0.0.1"}},
		TLS:      &v1alpha1.TLSSpec{StateDir: dir},
		Marathon: &v1alpha1.MarathonSpec{URLs: []string{"http://127.0.0.1:1"}},
		App:      &v1alpha1.AppSpec{},
	}}
	v1alpha1.Default(reg)
	reg.Spec.TLS.CA.RotationOverlap = v1alpha1.D(time.Second)
	st := state.New()
	clk := clocktestingNow()
	rec := NewCertificates(Deps{Spec: func() *v1alpha1.Spec { return &reg.Spec }, Store: st,
		Metrics: metrics.New(metrics.BuildInfo{}), Clock: clk, Log: logr.Discard()}, CertificatesOptions{})
	pass := func() state.PKI {
		t.Helper()
		if _, err := rec.Reconcile(context.Background(), CertificatesKey); err != nil {
			t.Fatal(err)
		}
		return st.PKI()
	}
	serve := func() string {
		return startRegistry(t, filepath.Join(dir, pki.FileServerCert), filepath.Join(dir, pki.FileServerKey))
	}
	verify := func(addr string, bundle []byte) {
		t.Helper()
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(bundle)
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "registry.example"})
		if err != nil {
			t.Fatalf("client trusting %d-CA bundle cannot verify %s: %v", bytes.Count(bundle, []byte("BEGIN")), addr, err)
		}
		c.Close()
	}
	b0 := pass().Bundle
	a0 := serve()
	verify(a0, b0)

	reg.Spec.TLS.KeyAlgorithm = string(pki.ECDSAP384)
	p1 := pass()
	if p1.Rotation != pki.PhasePublishing {
		t.Fatalf("rotation %q", p1.Rotation)
	}
	a1 := serve() // tls.crt was reissued (new key algorithm) by the old CA
	verify(a1, b0)
	verify(a1, p1.Bundle)

	clk.Step(2 * time.Second)
	p2 := pass()
	if p2.Rotation != pki.PhaseRetiring || p2.BundleHash != p1.BundleHash {
		t.Fatalf("switch: %q", p2.Rotation)
	}
	a2 := serve()
	verify(a2, p1.Bundle) // what every node carries at the switch
	verify(a1, p2.Bundle) // a registry not yet restarted

	st.SetApp(state.App{ID: reg.Spec.App.ID, RestartedForGeneration: p2.Generation})
	clk.Step(2 * time.Second)
	p3 := pass()
	if p3.Rotation != "" || len(p3.CAs) != 1 {
		t.Fatalf("finish: %q", p3.Rotation)
	}
	verify(a2, p3.Bundle)
	verify(a2, p2.Bundle)
}

// clocktestingNow is a fake clock at the real time, so certificates are
// valid for real clients while the test steps through rotation phases.
func clocktestingNow() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Now())
}
