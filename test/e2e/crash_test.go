//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(6, "crash-safety", crashSafety) }

// crashSafety: the operator is killed with SIGKILL after each kind of
// write of a CA rotation and started again. At every kill the state dir
// verifies; at every moment observed, every agent trusts the old or the
// new CA; in the end the rotation completes.
func crashSafety(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	setOverlap(t, sb, rotationOverlap)
	old := currentCA(t, sb)
	task0 := registryTask(t, sb)
	mon := startTrustMonitor(sb)
	defer mon.stop()

	began := time.Now()
	cn := fmt.Sprintf("registry-operator CA crash-test %d", began.Unix())
	if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.TLS.CA.CommonName = cn }); err != nil {
		t.Fatal(err)
	}
	moments := []struct {
		what  string
		check sandbox.Check
	}{
		{"the new CA was published and reached every agent (old and new CA trusted)", check(func(ctx context.Context) error {
			f, err := stateSet(ctx, sb)
			if err != nil {
				return err
			}
			next := pemCerts(f[pki.FileNextCACert])
			if len(next) != 1 {
				return fmt.Errorf("no next-ca.crt in the state dir yet")
			}
			for _, h := range sb.Agents() {
				b, err := h.ReadFile(ctx, sb.CAPath())
				if err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
				if !holds(b, old) || !holds(b, next[0]) {
					return fmt.Errorf("%s trusts %s, want old %s and new %s", h.Name, describeCAs(b), pki.Serial(old), pki.Serial(next[0]))
				}
			}
			return nil
		})},
		{"the server certificate was switched to the new CA in the state dir", check(func(ctx context.Context) error {
			f, err := stateSet(ctx, sb)
			if err != nil {
				return err
			}
			leaf, cas := pemCerts(f[pki.FileServerCert]), pemCerts(f[pki.FileCACert])
			if len(leaf) == 0 || len(cas) != 1 || cas[0].Equal(old) {
				return fmt.Errorf("ca.crt is still the old CA")
			}
			if _, err := leaf[0].Verify(x509.VerifyOptions{Roots: pool(cas[0])}); err != nil {
				return fmt.Errorf("tls.crt is not issued by the new CA yet: %w", err)
			}
			return nil
		})},
		{"the registry restart for the new certificate began", check(func(context.Context) error {
			app, _, err := sb.App(sandbox.AppID)
			if err != nil {
				return err
			}
			if len(app.Deployments) > 0 || !slices.ContainsFunc(app.Tasks, func(tk sandbox.Task) bool { return tk.ID == task0 }) {
				return nil
			}
			return fmt.Errorf("task %s still runs, no deployment", task0)
		})},
		{"the old CA was dropped from the trust bundle in the state dir", check(func(ctx context.Context) error {
			f, err := stateSet(ctx, sb)
			if err != nil {
				return err
			}
			if b := pemCerts(f[pki.FileBundle]); len(b) != 1 || b[0].Equal(old) {
				return fmt.Errorf("trust-bundle.crt holds %s", describeCAs(f[pki.FileBundle]))
			}
			return nil
		})},
	}
	for i, m := range moments {
		sb.Eventually(t, 90*time.Second, m.what, m.check)
		if err := sb.KillOperator(); err != nil {
			t.Fatalf("kill -9 the operator: %v", err)
		}
		t.Logf("kill %d at +%s: %s; then %s", i+1, time.Since(began).Round(100*time.Millisecond), m.what, observe(sb, old, task0))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := verifyStateDir(ctx, sb)
		cancel()
		if err != nil {
			sb.Fail(t, fmt.Sprintf("the state dir verifies after kill %d (%s)", i+1, m.what), err.Error())
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		err = sb.StartOperator(ctx)
		cancel()
		if err != nil {
			t.Fatalf("restart the operator after kill %d: %v", i+1, err)
		}
	}

	newCA := waitRotated(t, sb, old)
	t.Logf("CA rotation with %d kills done in %s", len(moments), time.Since(began).Round(time.Second))
	res := mon.stop()
	t.Logf("trust monitor: %s", res)
	if len(res.problems) > 0 {
		sb.Fail(t, "every agent trusts the old or the new CA at every moment observed", joinLines(res.problems))
	}
	var bad []string
	for _, s := range res.seen {
		if !slices.Contains(s.cas, fingerprint(old)) && !slices.Contains(s.cas, fingerprint(newCA)) {
			bad = append(bad, fmt.Sprintf("%s at %s trusted %v", s.agent, s.at.Format("15:04:05.000"), s.cas))
		}
	}
	if len(bad) > 0 {
		sb.Fail(t, fmt.Sprintf("every trust bundle observed holds the old CA %s or the new CA %s", fingerprint(old), fingerprint(newCA)),
			joinLines(bad))
	}
	ready(t, sb)
	pushPull(t, sb, 1, 2, "e2e/crash:1")
}

// observe describes the cluster at a kill, for the log.
func observe(sb *sandbox.Sandbox, old *x509.Certificate, task0 string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []string
	if f, err := stateSet(ctx, sb); err == nil {
		var files []string
		for n := range f {
			files = append(files, n)
		}
		sort.Strings(files)
		parts = append(parts, "state dir "+strings.Join(files, ","))
	}
	for _, h := range sb.Agents() {
		b, _ := h.ReadFile(ctx, sb.CAPath())
		parts = append(parts, h.Name+" trusts "+describeCAs(b))
	}
	if placed, err := sb.RegistryAgent().ReadFile(ctx, sb.CertsDir()+"/tls.crt"); err == nil {
		if c := pemCerts(placed); len(c) > 0 {
			_, err := c[0].Verify(x509.VerifyOptions{Roots: pool(old)})
			parts = append(parts, fmt.Sprintf("placed tls.crt by old CA=%v", err == nil))
		}
	}
	if app, _, err := sb.App(sandbox.AppID); err == nil {
		running := slices.ContainsFunc(app.Tasks, func(tk sandbox.Task) bool { return tk.ID == task0 })
		parts = append(parts, fmt.Sprintf("original task running=%v, deployments=%d", running, len(app.Deployments)))
	}
	return strings.Join(parts, "; ")
}

func holds(bundle []byte, c *x509.Certificate) bool {
	return slices.ContainsFunc(pemCerts(bundle), func(b *x509.Certificate) bool { return b.Equal(c) })
}

func fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return fmt.Sprintf("%X", s[:6])
}

// trustMonitor reads ca.crt on every agent every 200ms and records each
// distinct set of CAs an agent trusted, and any moment an agent trusted
// nothing (file missing, empty or unparsable).
type trustMonitor struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu  sync.Mutex
	res monitorResult
}

type trustSeen struct {
	agent string
	at    time.Time
	cas   []string // fingerprints
}

type monitorResult struct {
	reads    int
	seen     []trustSeen
	problems []string
}

func (r monitorResult) String() string {
	return fmt.Sprintf("%d reads, %d distinct trust states, %d moments without trust", r.reads, len(r.seen), len(r.problems))
}

func startTrustMonitor(sb *sandbox.Sandbox) *trustMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &trustMonitor{cancel: cancel, done: make(chan struct{})}
	last := map[string]string{}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			for _, h := range sb.Agents() {
				b, err := h.ReadFile(ctx, sb.CAPath())
				now := time.Now()
				var fps []string
				for _, c := range pemCerts(b) {
					fps = append(fps, fingerprint(c))
				}
				sort.Strings(fps)
				m.mu.Lock()
				m.res.reads++
				switch {
				case err != nil:
					m.res.problems = append(m.res.problems, fmt.Sprintf("%s %s: %v", now.Format("15:04:05.000"), h.Name, err))
				case len(fps) == 0 || !bytes.Contains(b, []byte("-----END CERTIFICATE-----")):
					m.res.problems = append(m.res.problems, fmt.Sprintf("%s %s: %s holds no certificate", now.Format("15:04:05.000"), h.Name, sb.CAPath()))
				case last[h.Name] != strings.Join(fps, ","):
					last[h.Name] = strings.Join(fps, ",")
					m.res.seen = append(m.res.seen, trustSeen{agent: h.Name, at: now, cas: fps})
				}
				m.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return m
}

func (m *trustMonitor) stop() monitorResult {
	m.once.Do(func() {
		m.cancel()
		<-m.done
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.res
}
