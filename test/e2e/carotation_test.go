//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(5, "ca-rotation", caRotation) }

// rotationOverlap is tls.ca.rotationOverlap for the CA rotation
// scenarios: long enough that each phase is seen, short enough to keep
// the suite quick.
const rotationOverlap = 10 * time.Second

// rotationTimeout bounds a whole CA rotation: publish, overlap, switch,
// placement, registry restart, overlap, retire.
const rotationTimeout = 3 * time.Minute

// caRotation: a new CA key (tls.keyAlgorithm changed) is published next
// to the old CA, the server certificate switches to it, the registry is
// restarted and the old CA is retired, while an agent pulls every second.
// No pull may fail for a certificate reason; refused connections while
// the registry restarts are allowed and counted.
func caRotation(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	setOverlap(t, sb, rotationOverlap)
	ref := "e2e/ca-rotation:1"
	pushPull(t, sb, 1, 2, ref)
	old := currentCA(t, sb)
	alg := pki.ECDSAP384
	if pki.AlgorithmOf(old.PublicKey) == pki.ECDSAP384 {
		alg = pki.ECDSAP256
	}

	loop := startPullLoop(sb, 2, ref)
	defer loop.stop()
	// Let the loop show it works before anything changes.
	sb.Eventually(t, 30*time.Second, "the pull loop succeeds before the rotation", loop.succeeded(1))
	began := time.Now()
	if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.TLS.KeyAlgorithm = string(alg) }); err != nil {
		t.Fatal(err)
	}
	newCA := waitRotated(t, sb, old)
	t.Logf("CA rotation %s -> %s (%s) done in %s", pki.Serial(old), pki.Serial(newCA), alg, time.Since(began).Round(time.Second))
	if got := pki.AlgorithmOf(newCA.PublicKey); got != alg {
		sb.Fail(t, "the new CA's key is "+string(alg), string(got))
	}
	// A few more pulls against the new chain, then stop the loop.
	n := loop.snapshot().ok
	sb.Eventually(t, 30*time.Second, "the pull loop succeeds against the new CA", loop.succeeded(n+2))
	res := loop.stop()
	t.Logf("pull loop: %s", res)
	if len(res.certErrs) > 0 {
		sb.Fail(t, "no pull fails for a certificate reason during the CA rotation", joinLines(res.certErrs))
	}
	if len(res.otherErrs) > 0 {
		sb.Fail(t, "pulls fail only with refused or dropped connections while the registry restarts", joinLines(res.otherErrs))
	}
	ready(t, sb)
	pushPull(t, sb, 2, 1, "e2e/ca-rotation:2")
}

// setOverlap sets tls.ca.rotationOverlap and waits until it is in force.
func setOverlap(t *testing.T, sb *sandbox.Sandbox, d time.Duration) {
	t.Helper()
	if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.TLS.CA.RotationOverlap = v1alpha1.D(d) }); err != nil {
		t.Fatal(err)
	}
	want := "rotationOverlap: " + d.String()
	sb.Eventually(t, 30*time.Second, "the operator runs with "+want, check(func(ctx context.Context) error {
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(st.Config.SpecYAML, want) || st.Config.LastReloadError != "" {
			return fmt.Errorf("spec in force does not contain %q (last reload error %q)", want, st.Config.LastReloadError)
		}
		return nil
	}))
}

// stateSet loads the state dir the way the operator does: one generation,
// never a mix of two.
func stateSet(ctx context.Context, sb *sandbox.Sandbox) (pki.Files, error) {
	f, err := pki.NewDirStore(sb.StateDir()).Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the state dir %s: %w", sb.StateDir(), err)
	}
	return f, nil
}

// currentCA is the CA in force (ca.crt of the state dir).
func currentCA(t *testing.T, sb *sandbox.Sandbox) *x509.Certificate {
	t.Helper()
	f, err := stateSet(context.Background(), sb)
	if err != nil {
		sb.Fail(t, "a readable state dir", err.Error())
	}
	cas := pemCerts(f[pki.FileCACert])
	if len(cas) != 1 {
		sb.Fail(t, "one CA in ca.crt", fmt.Sprintf("%d certificates", len(cas)))
	}
	return cas[0]
}

// verifyStateDir checks one generation of the state dir as a person would
// with openssl: tls.crt verifies against ca.crt and against
// trust-bundle.crt, and each key belongs to its certificate.
func verifyStateDir(ctx context.Context, sb *sandbox.Sandbox) error {
	f, err := stateSet(ctx, sb)
	if err != nil {
		return err
	}
	for _, n := range []string{pki.FileCACert, pki.FileCAKey, pki.FileServerCert, pki.FileServerKey, pki.FileBundle} {
		if len(f[n]) == 0 {
			return fmt.Errorf("state dir: %s missing or empty", n)
		}
	}
	dir, err := os.MkdirTemp(sb.Dir, "verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for n, b := range f {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return err
		}
	}
	for _, anchor := range []string{pki.FileCACert, pki.FileBundle} {
		out, err := exec.CommandContext(ctx, "openssl", "verify", "-CAfile", filepath.Join(dir, anchor),
			filepath.Join(dir, pki.FileServerCert)).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(": OK")) {
			return fmt.Errorf("openssl verify -CAfile %s %s: %v: %s", anchor, pki.FileServerCert, err, strings.TrimSpace(string(out)))
		}
	}
	if _, err := tls.X509KeyPair(f[pki.FileServerCert], f[pki.FileServerKey]); err != nil {
		return fmt.Errorf("state dir: tls.key does not belong to tls.crt: %w", err)
	}
	if _, err := tls.X509KeyPair(f[pki.FileCACert], f[pki.FileCAKey]); err != nil {
		return fmt.Errorf("state dir: ca.key does not belong to ca.crt: %w", err)
	}
	if len(f[pki.FileNextCACert]) > 0 {
		if _, err := tls.X509KeyPair(f[pki.FileNextCACert], f[pki.FileNextCAKey]); err != nil {
			return fmt.Errorf("state dir: next-ca.key does not belong to next-ca.crt: %w", err)
		}
	}
	return nil
}

// waitRotated waits for the end of a CA rotation away from old and
// returns the new CA: the state dir holds the new CA alone (no next or
// previous CA) and verifies, every agent trusts exactly the new CA, the
// registry serves a certificate issued by it (and not by old), and the
// operator reports no rotation under way.
func waitRotated(t *testing.T, sb *sandbox.Sandbox, old *x509.Certificate) *x509.Certificate {
	t.Helper()
	var newCA *x509.Certificate
	sb.Eventually(t, rotationTimeout, "the CA rotation away from "+pki.Serial(old)+" completes: agents trust only the new CA, the registry serves its certificate",
		check(func(ctx context.Context) error {
			f, err := stateSet(ctx, sb)
			if err != nil {
				return err
			}
			cas := pemCerts(f[pki.FileCACert])
			if len(cas) != 1 || cas[0].Equal(old) {
				return fmt.Errorf("state dir ca.crt is still the old CA (%d certificates)", len(cas))
			}
			ca := cas[0]
			for _, n := range []string{pki.FileNextCACert, pki.FileNextCAKey, pki.FilePrevCACert} {
				if f[n] != nil {
					return fmt.Errorf("state dir still holds %s: the rotation is under way", n)
				}
			}
			bundle := f[pki.FileBundle]
			if b := pemCerts(bundle); len(b) != 1 || !b[0].Equal(ca) {
				return fmt.Errorf("state dir trust-bundle.crt holds %d certificates, want the new CA alone", len(b))
			}
			if err := verifyStateDir(ctx, sb); err != nil {
				return err
			}
			for _, h := range sb.Agents() {
				got, err := h.ReadFile(ctx, sb.CAPath())
				if err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
				if !bytes.Equal(got, bundle) {
					return fmt.Errorf("%s: %s trusts %s, want the new CA %s alone", h.Name, sb.CAPath(), describeCAs(got), pki.Serial(ca))
				}
			}
			served, err := sb.ServedCert(ctx)
			if err != nil {
				return err
			}
			if _, err := served.Verify(x509.VerifyOptions{Roots: pool(ca)}); err != nil {
				return fmt.Errorf("the served certificate %s does not verify against the new CA: %w", pki.Serial(served), err)
			}
			if _, err := served.Verify(x509.VerifyOptions{Roots: pool(old)}); err == nil {
				return fmt.Errorf("the served certificate %s still verifies against the old CA", pki.Serial(served))
			}
			st, err := sb.Status(ctx)
			if err != nil {
				return err
			}
			if st.Certificates.Rotation != "" || len(st.Certificates.CAs) != 1 {
				return fmt.Errorf("/api/status: rotation %q, %d CAs", st.Certificates.Rotation, len(st.Certificates.CAs))
			}
			newCA = ca
			return nil
		}))
	return newCA
}

// describeCAs names the certificates of a PEM bundle by serial.
func describeCAs(b []byte) string {
	var out []string
	for _, c := range pemCerts(b) {
		out = append(out, pki.Serial(c))
	}
	if len(out) == 0 {
		return fmt.Sprintf("no certificate (%d bytes)", len(b))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// pullLoop pulls one image from one agent every second until stopped and
// sorts the failures: certificate errors (never allowed), refused or
// dropped connections while the registry restarts (allowed, counted), and
// anything else, including a refused connection while the same registry
// task ran healthy before and after the pull.
type pullLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu  sync.Mutex
	res pullResult
}

type pullResult struct {
	ok, restarting int
	certErrs       []string
	otherErrs      []string
}

func (r pullResult) String() string {
	return fmt.Sprintf("%d pulls succeeded, %d refused or dropped while the registry restarted, %d certificate errors, %d other errors",
		r.ok, r.restarting, len(r.certErrs), len(r.otherErrs))
}

func startPullLoop(sb *sandbox.Sandbox, agent int, ref string) *pullLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &pullLoop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			began := time.Now()
			before := registryTaskState(sb)
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := sb.Pull(pctx, agent, ref)
			pcancel()
			if ctx.Err() != nil {
				return // stopped mid-pull: not a result
			}
			after := registryTaskState(sb)
			l.record(began, err, before == "" || before != after)
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(began.Add(time.Second))):
			}
		}
	}()
	return l
}

// registryTaskState names the registry's one running, healthy task, or
// "" while there is none, more than one, or a deployment runs.
func registryTaskState(sb *sandbox.Sandbox) string {
	app, ok, err := sb.App(sandbox.AppID)
	if err != nil || !ok || len(app.Deployments) > 0 || len(app.Tasks) != 1 {
		return ""
	}
	if tk := app.Tasks[0]; tk.State == "TASK_RUNNING" && tk.Healthy() {
		return tk.ID
	}
	return ""
}

func (l *pullLoop) record(at time.Time, err error, restarting bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.res.ok++
		return
	}
	msg := err.Error()
	var ce *sandbox.CopyError
	if errors.As(err, &ce) {
		msg = ce.Output
	}
	line := at.Format("15:04:05.000") + " " + strings.TrimSpace(msg)
	dropped := strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset by peer") ||
		strings.HasSuffix(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg), `"`)), "EOF")
	switch {
	case strings.Contains(msg, "x509") || strings.Contains(msg, "certificate"):
		l.res.certErrs = append(l.res.certErrs, line)
	case dropped && restarting:
		l.res.restarting++
	default:
		if !restarting {
			line += " (the same registry task ran healthy before and after this pull)"
		}
		l.res.otherErrs = append(l.res.otherErrs, line)
	}
}

func (l *pullLoop) snapshot() pullResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.certErrs = append([]string(nil), r.certErrs...)
	r.otherErrs = append([]string(nil), r.otherErrs...)
	return r
}

// succeeded is a check that at least n pulls have succeeded.
func (l *pullLoop) succeeded(n int) sandbox.Check {
	return func(context.Context) (bool, string) {
		r := l.snapshot()
		return r.ok >= n, r.String() + lastOf(r.certErrs, r.otherErrs)
	}
}

func lastOf(lists ...[]string) string {
	for _, l := range lists {
		if len(l) > 0 {
			return "; last failure: " + l[len(l)-1]
		}
	}
	return ""
}

// stop ends the loop, waits for it and returns what it saw.
func (l *pullLoop) stop() pullResult {
	l.once.Do(func() {
		l.cancel()
		<-l.done
	})
	return l.snapshot()
}
