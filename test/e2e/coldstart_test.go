//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(1, "cold-start", coldStart) }

// coldStart: from nothing, the operator issues the certificates, makes
// every agent trust the CA and set the conntrack sysctl, places the
// certificate on the registry's agent, creates the registry app, which
// becomes healthy and serves the certificate, and images move through it.
func coldStart(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Certificates: in the state dir, chaining to the CA, naming the address.
	bundle := readState(t, sb, "trust-bundle.crt")
	chain := readState(t, sb, "tls.crt")
	key := readState(t, sb, "tls.key")
	leaf, ca := parseChain(t, sb, chain, bundle)
	if err := leaf.VerifyHostname(sb.RegistryAgent().Address); err != nil {
		sb.Fail(t, "the server certificate covers "+sb.RegistryAgent().Address, err.Error())
	}
	st, err := sb.Status(ctx)
	if err != nil {
		sb.Fail(t, "/api/status answers", err.Error())
	}
	if st.Certificates.Server.Serial != pki.Serial(leaf) {
		sb.Fail(t, "/api/status names the server certificate in the state dir (serial "+pki.Serial(leaf)+")",
			st.Certificates.Server.Serial)
	}

	// Every agent trusts the CA and has conntrack set.
	for _, h := range sb.Agents() {
		got, err := h.ReadFile(ctx, sb.CAPath())
		if err != nil || !bytes.Equal(got, bundle) {
			sb.Fail(t, fmt.Sprintf("%s on %s is the trust bundle", sb.CAPath(), h.Name), fmt.Sprintf("err=%v, %d bytes", err, len(got)))
		}
		if v, err := h.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "1" {
			sb.Fail(t, sandbox.ConntrackKey+"=1 on "+h.Name, fmt.Sprintf("%q, err=%v", v, err))
		}
	}

	// The certificate and key are on the registry's agent only.
	reg := sb.RegistryAgent()
	for name, want := range map[string][]byte{"tls.crt": chain, "tls.key": key} {
		got, err := reg.ReadFile(ctx, filepath.Join(sb.CertsDir(), name))
		if err != nil || !bytes.Equal(got, want) {
			sb.Fail(t, fmt.Sprintf("%s/%s on %s is the one in the state dir", sb.CertsDir(), name, reg.Name), fmt.Sprintf("err=%v, %d bytes", err, len(got)))
		}
	}
	if fi, err := reg.Stat(ctx, filepath.Join(sb.CertsDir(), "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		sb.Fail(t, "tls.key is mode 0600 on the registry's agent", fmt.Sprintf("%v, err=%v", fi, err))
	}
	for _, h := range sb.Agents()[1:] {
		if _, err := h.Stat(ctx, filepath.Join(sb.CertsDir(), "tls.key")); !os.IsNotExist(err) {
			sb.Fail(t, "no tls.key on "+h.Name+", which may not run the registry", fmt.Sprintf("stat: %v", err))
		}
	}

	// The registry app exists in Marathon, with one healthy task on agent 0.
	app, ok, err := sb.App(sandbox.AppID)
	if err != nil || !ok {
		sb.Fail(t, "app "+sandbox.AppID+" in Marathon", fmt.Sprintf("ok=%v err=%v", ok, err))
	}
	if len(app.Tasks) != 1 || app.Tasks[0].Host != reg.Address || app.Tasks[0].State != "TASK_RUNNING" || !app.Tasks[0].Healthy() {
		sb.Fail(t, "one running, healthy task on "+reg.Address, fmt.Sprintf("%+v", app.Tasks))
	}

	// The registry serves the issued certificate, and the operator's probe says so.
	served, err := sb.ServedCert(ctx)
	if err != nil || !bytes.Equal(served.Raw, leaf.Raw) {
		sb.Fail(t, "the registry serves serial "+pki.Serial(leaf), fmt.Sprintf("%v, err=%v", serialOf(served), err))
	}
	if _, err := served.Verify(x509.VerifyOptions{Roots: pool(ca)}); err != nil {
		sb.Fail(t, "the served certificate verifies against the CA", err.Error())
	}
	// The gauges follow the status page: a pass updates the store first
	// and its gauges as it ends, so they may trail it by a moment.
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"registry_operator_registry_probe_success", nil, 1},
		{"registry_operator_certificate_ready", []string{"cert", "server"}, 1},
		{"registry_operator_certificate_ready", []string{"cert", "ca"}, 1},
		{"registry_operator_nodes", []string{"state", "in_sync"}, float64(len(sb.Agents()))},
		{"registry_operator_app_instances", []string{"app", sandbox.AppID, "state", "healthy"}, 1},
	} {
		sb.Eventually(t, 10*time.Second, fmt.Sprintf("%s%v = %g", c.name, c.kv, c.want), metricIs(sb, c.want, c.name, c.kv...))
	}

	// Images move through the registry: push from agent 1, pull on agent 2.
	pushPull(t, sb, 1, 2, "e2e/cold-start:1")
}

func readState(t *testing.T, sb *sandbox.Sandbox, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sb.StateDir(), name))
	if err != nil {
		sb.Fail(t, name+" in the state dir "+sb.StateDir(), err.Error())
	}
	return b
}

// parseChain returns the leaf of tls.crt and the CA of the bundle it
// chains to.
func parseChain(t *testing.T, sb *sandbox.Sandbox, chain, bundle []byte) (leaf *x509.Certificate, ca *x509.Certificate) {
	t.Helper()
	certs := pemCerts(chain)
	cas := pemCerts(bundle)
	if len(certs) == 0 || len(cas) == 0 {
		sb.Fail(t, "tls.crt and trust-bundle.crt hold certificates", fmt.Sprintf("%d and %d", len(certs), len(cas)))
	}
	leaf = certs[0]
	for _, c := range cas {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(c)}); err == nil {
			return leaf, c
		}
	}
	sb.Fail(t, "the server certificate chains to a CA of the trust bundle", "it chains to none")
	return nil, nil
}

func pemCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func pool(cs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

func serialOf(c *x509.Certificate) string {
	if c == nil {
		return "<none>"
	}
	return pki.Serial(c)
}
