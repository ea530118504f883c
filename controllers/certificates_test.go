package controllers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

var certT0 = time.Date(2030, 6, 1, 8, 0, 0, 0, time.UTC)

type certEnv struct {
	t     *testing.T
	spec  *v1alpha1.Spec
	store *state.Store
	m     *metrics.Metrics
	clk   *clocktesting.FakeClock
	logs  *logLines
	rec   *Certificates
	dir   string
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) sink() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		l.lines = append(l.lines, args)
		l.mu.Unlock()
	}, funcr.Options{})
}

func (l *logLines) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func newCertEnv(t *testing.T, mutate func(*v1alpha1.Registry)) *certEnv {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	reg := &v1alpha1.Registry{Spec: v1alpha1.Spec{
		Registry: &v1alpha1.RegistryEndpoint{Address: "registry.example:5000", DNSNames: []string{"alias.example"},
			IPAddresses: []string{"127.0.0.1", "198.18.0.10"}},
		TLS: &v1alpha1.TLSSpec{StateDir: dir},
	}}
	if mutate != nil {
		mutate(reg)
	}
	v1alpha1.Default(reg)
	e := &certEnv{t: t, spec: &reg.Spec, store: state.New(), m: metrics.New(metrics.BuildInfo{}),
		clk: clocktesting.NewFakeClock(certT0), logs: &logLines{}, dir: dir}
	e.rec = NewCertificates(Deps{Spec: func() *v1alpha1.Spec { return e.spec }, Store: e.store, Metrics: e.m, Clock: e.clk,
		Log: e.logs.sink()}, CertificatesOptions{})
	return e
}

func (e *certEnv) reconcile() time.Duration {
	e.t.Helper()
	res, err := e.rec.Reconcile(context.Background(), CertificatesKey)
	if err != nil {
		e.t.Fatalf("Reconcile: %v", err)
	}
	if res.RequeueAfter > 0 && res.ResyncAfter > 0 {
		e.t.Fatalf("both RequeueAfter and ResyncAfter set: %+v", res)
	}
	return res.RequeueAfter + res.ResyncAfter
}

func metricValue(t *testing.T, m *metrics.Metrics, name, cert string) float64 {
	t.Helper()
	switch name {
	case "expiration":
		return testutil.ToFloat64(m.CertExpiration.WithLabelValues(cert))
	case "renewal":
		return testutil.ToFloat64(m.CertRenewal.WithLabelValues(cert))
	default:
		return testutil.ToFloat64(m.CertReady.WithLabelValues(cert))
	}
}

func TestCertificatesBootstrapPublishesState(t *testing.T) {
	e := newCertEnv(t, nil)
	after := e.reconcile()
	p := e.store.PKI()
	if !p.Ready || p.Generation != 1 || p.Rotation != "" || len(p.CAs) != 1 {
		t.Fatalf("PKI %+v", p)
	}
	if p.BundleHash != state.Hash(p.Bundle) || p.ServerHash != state.Hash(p.ServerChain) || len(p.ServerKey) == 0 {
		t.Fatal("hashes must be of the published bytes")
	}
	disk, _ := os.ReadFile(filepath.Join(e.dir, pki.FileBundle))
	if string(disk) != string(p.Bundle) {
		t.Fatal("published bundle differs from trust-bundle.crt")
	}
	wantSANs := []string{"alias.example", "registry.example", "127.0.0.1", "198.18.0.10"}
	if got := append(append([]string{}, p.Server.DNSNames...), p.Server.IPAddresses...); strings.Join(got, ",") != strings.Join(wantSANs, ",") {
		t.Fatalf("server SANs %v", got)
	}
	if after != MaxCertificatesRequeue {
		t.Fatalf("RequeueAfter %v with renewal months away", after)
	}
	for _, cert := range []string{"ca", "server"} {
		info := p.Server
		if cert == "ca" {
			info = p.CAs[0]
		}
		if metricValue(t, e.m, "expiration", cert) != float64(info.NotAfter.Unix()) ||
			metricValue(t, e.m, "renewal", cert) != float64(info.RenewalTime.Unix()) || metricValue(t, e.m, "ready", cert) != 1 {
			t.Fatalf("%s metrics do not match %+v", cert, info)
		}
	}
	if n := e.logs.count(`"issued certificate"`); n != 2 || e.logs.count(p.Server.Serial) != 1 {
		t.Fatalf("issuance log lines: %d\n%v", n, e.logs.lines)
	}
	e.clk.SetTime(certT0.Add(time.Hour))
	e.reconcile()
	if e.logs.count(`"issued certificate"`) != 2 || e.store.PKI().Generation != 1 {
		t.Fatal("a pass with nothing due must issue nothing")
	}
}

func TestCertificatesRenewOnTime(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		duration, renewBefore time.Duration
		wantFirst             time.Duration
	}{
		// NotBefore is backdated by pki.Backdate, which counts in the lifetime.
		{"short-lived", 3 * time.Minute, time.Minute, 2 * time.Minute},
		{"renewBefore longer than lifetime", 3 * time.Minute, 10 * time.Minute, 3*time.Minute - (4*time.Minute)/3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCertEnv(t, func(r *v1alpha1.Registry) {
				r.Spec.TLS.Server.Duration = v1alpha1.D(tc.duration)
				r.Spec.TLS.Server.RenewBefore = v1alpha1.D(tc.renewBefore)
			})
			after := e.reconcile()
			if after != tc.wantFirst {
				t.Fatalf("RequeueAfter %v, want %v", after, tc.wantFirst)
			}
			first := e.store.PKI()
			e.clk.SetTime(certT0.Add(after - time.Second))
			if e.reconcile(); e.store.PKI().Server.Serial != first.Server.Serial {
				t.Fatal("renewed before the renewal time")
			}
			e.clk.SetTime(certT0.Add(after))
			e.reconcile()
			second := e.store.PKI()
			if second.Server.Serial == first.Server.Serial || second.Generation != 2 || second.BundleHash != first.BundleHash {
				t.Fatalf("at the renewal time: serial %s -> %s, generation %d", first.Server.Serial, second.Server.Serial, second.Generation)
			}
			// Several renewals in a row keep the pace.
			for i := 0; i < 5; i++ {
				e.clk.SetTime(e.clk.Now().Add(e.reconcile()))
			}
			if g := e.store.PKI().Generation; g < 6 {
				t.Fatalf("generation %d after 5 more renewal periods", g)
			}
		})
	}
}

func TestCertificatesSANChangeReissues(t *testing.T) {
	e := newCertEnv(t, nil)
	e.reconcile()
	next := *e.spec
	reg := *next.Registry
	reg.DNSNames = []string{"alias.example", "new.example"}
	next.Registry = &reg
	e.spec = &next
	e.reconcile()
	p := e.store.PKI()
	if p.Generation != 2 || !strings.Contains(strings.Join(p.Server.DNSNames, ","), "new.example") {
		t.Fatalf("SAN change not reissued: %+v", p.Server)
	}
	if e.logs.count("names [") != 1 {
		t.Fatalf("the reason must name the change: %v", e.logs.lines)
	}
}

func TestCertificatesRotationWaitsForEveryNode(t *testing.T) {
	e := newCertEnv(t, func(r *v1alpha1.Registry) {
		r.Spec.Nodes = &v1alpha1.NodesSpec{Static: []string{"198.18.0.2", "198.18.0.3"}}
		r.Spec.Trust = &v1alpha1.TrustSpec{}
	})
	e.store.SetFleet([]state.Node{{Address: "198.18.0.2"}, {Address: "198.18.0.3"}})
	e.reconcile()
	old := e.store.PKI()
	carry := func(addr, hash string) {
		e.store.SetConcern(addr, reconciler.Trust, state.Concern{InSync: true, Hash: hash, Checked: e.clk.Now()})
	}
	carry("198.18.0.2", old.BundleHash)
	carry("198.18.0.3", old.BundleHash)

	e.spec.TLS.KeyAlgorithm = string(pki.ECDSAP384)
	after := e.reconcile()
	pub := e.store.PKI()
	if pub.Rotation != pki.PhasePublishing || len(pub.CAs) != 2 || after != 5*time.Minute {
		t.Fatalf("publishing: rotation %q, %d CAs, requeue %v", pub.Rotation, len(pub.CAs), after)
	}
	// The new key algorithm reaches the server certificate at the switch,
	// not before: one new generation, one registry restart.
	if pub.ServerHash != old.ServerHash || pub.Generation != old.Generation {
		t.Fatalf("publishing: server certificate reissued (generation %d -> %d)", old.Generation, pub.Generation)
	}
	e.clk.SetTime(certT0.Add(6 * time.Minute))
	after = e.reconcile()
	if p := e.store.PKI(); p.Rotation != pki.PhasePublishing || !strings.Contains(strings.Join(p.Pending, " "), "trust reconciler has not run") ||
		after != pki.PollWhileWaiting {
		t.Fatalf("must wait for the trust reconciler: %q %v", p.Pending, after)
	}
	carry("198.18.0.2", pub.BundleHash)
	e.reconcile()
	if p := e.store.PKI(); p.Rotation != pki.PhasePublishing || !strings.Contains(strings.Join(p.Pending, " "), "198.18.0.3") {
		t.Fatalf("must wait for 198.18.0.3: %q", p.Pending)
	}
	carry("198.18.0.3", pub.BundleHash)
	e.reconcile()
	sw := e.store.PKI()
	if sw.Rotation != pki.PhaseRetiring ||
		sw.BundleHash != pub.BundleHash || sw.Generation != old.Generation+1 {
		t.Fatalf("switch: rotation %q, bundle changed %v, generation %d", sw.Rotation, sw.BundleHash != pub.BundleHash, sw.Generation)
	}
	// The app is not managed: the old CA stays until the old certificate expires.
	e.clk.SetTime(certT0.Add(time.Hour))
	e.reconcile()
	if e.store.PKI().Rotation != pki.PhaseRetiring {
		t.Fatal("old CA dropped while the old certificate may still be served")
	}
	e.clk.SetTime(pub.Server.NotAfter)
	e.reconcile()
	done := e.store.PKI()
	if done.Rotation != "" || len(done.CAs) != 1 || done.BundleHash == pub.BundleHash || !strings.Contains(done.CAs[0].Subject, "registry-operator CA") {
		t.Fatalf("finish: %+v", done)
	}
}

func TestCertificatesRotationWithoutTrustUsesOverlap(t *testing.T) {
	e := newCertEnv(t, nil)
	e.reconcile()
	e.spec.TLS.CA.CommonName = "renamed CA"
	e.reconcile()
	e.clk.SetTime(certT0.Add(e.spec.TLS.CA.RotationOverlap.Duration))
	e.reconcile()
	if p := e.store.PKI(); p.Rotation != pki.PhaseRetiring || !strings.Contains(p.Server.Issuer, "renamed CA") {
		t.Fatalf("with trust off the overlap alone gates the switch: %q issuer %s", p.Rotation, p.Server.Issuer)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func TestCertificatesCorruptStateIsLeftAlone(t *testing.T) {
	e := newCertEnv(t, nil)
	e.reconcile()
	good := e.store.PKI()
	key, _ := os.ReadFile(filepath.Join(e.dir, pki.FileCAKey))
	if err := os.WriteFile(filepath.Join(e.dir, pki.FileCAKey), key[:len(key)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, e.dir)
	_, err := e.rec.Reconcile(context.Background(), CertificatesKey)
	if err == nil || !strings.Contains(err.Error(), "ca.key") || !strings.Contains(err.Error(), "regenerateOnCorruption") {
		t.Fatalf("Reconcile = %v, want an error naming ca.key and the option", err)
	}
	p := e.store.PKI()
	if p.Ready || !strings.Contains(p.Reason, "ca.key") || p.BundleHash != good.BundleHash || metricValue(t, e.m, "ready", "ca") != 0 {
		t.Fatalf("NotReady must keep the published bundle: %+v", p)
	}
	if after := snapshot(t, e.dir); len(after) != len(before) {
		t.Fatal("files changed")
	} else {
		for k, v := range before {
			if after[k] != v {
				t.Fatalf("%s changed", k)
			}
		}
	}
	e.spec.TLS.CA.RegenerateOnCorruption = true
	e.reconcile()
	if p := e.store.PKI(); !p.Ready || p.BundleHash == good.BundleHash || p.CAs[0].Serial == good.CAs[0].Serial {
		t.Fatal("regenerateOnCorruption must issue a new CA")
	}
}

func TestCertificatesClockSkew(t *testing.T) {
	e := newCertEnv(t, nil)
	e.reconcile()
	e.clk.SetTime(certT0.Add(-time.Hour))
	_, err := e.rec.Reconcile(context.Background(), CertificatesKey)
	if err == nil || !strings.Contains(err.Error(), "clock") || e.store.PKI().Ready {
		t.Fatalf("Reconcile = %v, want a clock skew error and NotReady", err)
	}
}

func TestCertificatesReportModeWritesNothing(t *testing.T) {
	e := newCertEnv(t, func(r *v1alpha1.Registry) { r.Spec.Reconcile.Mode = v1alpha1.ModeReport })
	e.reconcile()
	p := e.store.PKI()
	if p.Ready || len(p.Pending) != 2 || !strings.HasPrefix(p.Pending[0], `issue CA "registry-operator CA"`) {
		t.Fatalf("report on empty state: %+v", p.Pending)
	}
	if _, err := os.Stat(e.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("report mode created the state directory")
	}
	e.spec.Reconcile.Mode = v1alpha1.ModeEnforce
	e.reconcile()
	issued := e.store.PKI()
	e.spec.Reconcile.Mode = v1alpha1.ModeReport
	e.spec.Registry.DNSNames = []string{"other.example"}
	before := snapshot(t, e.dir)
	e.reconcile()
	p = e.store.PKI()
	if !p.Ready || p.Generation != issued.Generation || len(p.Pending) != 1 || !strings.Contains(p.Pending[0], "other.example") {
		t.Fatalf("report on a SAN change: %+v", p.Pending)
	}
	if testutil.ToFloat64(e.m.OutOfSync.WithLabelValues(reconciler.Certificates, CertificatesKey)) != 1 {
		t.Fatal("out_of_sync must be 1 while a change is pending")
	}
	after := snapshot(t, e.dir)
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("report mode changed %s", k)
		}
	}
}

type failingStore struct{ pki.Store }

func (failingStore) Save(context.Context, pki.Files) error {
	return errors.New("no space left on device")
}

func TestCertificatesSaveFailureLeavesStateAlone(t *testing.T) {
	e := newCertEnv(t, nil)
	e.rec = NewCertificates(Deps{Spec: func() *v1alpha1.Spec { return e.spec }, Store: e.store, Metrics: e.m, Clock: e.clk,
		Log: e.logs.sink()},
		CertificatesOptions{PKIStore: func(s *v1alpha1.Spec) pki.Store { return failingStore{pki.NewDirStore(s.TLS.StateDir)} }})
	_, err := e.rec.Reconcile(context.Background(), CertificatesKey)
	if err == nil || !strings.Contains(err.Error(), "no space") || e.store.PKI().Ready || e.logs.count("issued certificate") != 0 {
		t.Fatalf("Reconcile = %v; an unsaved issuance must be neither published nor logged", err)
	}
}

func TestCertificatesProvided(t *testing.T) {
	names, _ := pki.NewSANs("registry.example", "alias.example", "127.0.0.1", "198.18.0.10")
	ca, _ := pki.NewCA(pki.ECDSAP256, pki.CertParams{CommonName: "corp", Duration: 1000 * time.Hour}, certT0)
	srv, _ := pki.IssueServer(ca, pki.ECDSAP256, pki.CertParams{Duration: 100 * time.Hour}, names, certT0)
	dir := t.TempDir()
	files := map[string][]byte{"tls.crt": srv.CertPEM, "tls.key": srv.KeyPEM, "ca.crt": ca.CertPEM}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := newCertEnv(t, func(r *v1alpha1.Registry) {
		r.Spec.TLS.Mode = v1alpha1.TLSProvided
		r.Spec.TLS.Provided = &v1alpha1.ProvidedCert{CertFile: filepath.Join(dir, "tls.crt"),
			KeyFile: filepath.Join(dir, "tls.key"), CAFile: filepath.Join(dir, "ca.crt")}
	})
	e.reconcile()
	p := e.store.PKI()
	if !p.Ready || string(p.Bundle) != string(ca.CertPEM) || p.Server.Serial != pki.Serial(srv.Cert) || p.Generation != 1 {
		t.Fatalf("provided: %+v", p)
	}
	if _, err := os.Stat(e.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("provided mode must not write a state directory")
	}
	e.reconcile()
	if e.store.PKI().Generation != 1 {
		t.Fatal("an unchanged provided certificate must keep its generation")
	}
	e.spec.Registry.DNSNames = append(e.spec.Registry.DNSNames, "missing.example")
	_, err := e.rec.Reconcile(context.Background(), CertificatesKey)
	if err == nil || !strings.Contains(err.Error(), "missing.example") || e.store.PKI().Ready || e.store.PKI().BundleHash != p.BundleHash {
		t.Fatalf("missing SAN: %v", err)
	}
}

func TestCertificatesGenerationKeepsGrowingAfterRegeneratedStateFile(t *testing.T) {
	e := newCertEnv(t, func(r *v1alpha1.Registry) { r.Spec.TLS.CA.RegenerateOnCorruption = true })
	e.reconcile()
	e.spec.Registry.DNSNames = []string{"x.example"}
	e.reconcile()
	if g := e.store.PKI().Generation; g != 2 {
		t.Fatalf("generation %d", g)
	}
	if err := os.WriteFile(filepath.Join(e.dir, pki.FileState), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	if g := e.store.PKI().Generation; g != 3 {
		t.Fatalf("generation after regenerating state.json: %d, want 3", g)
	}
}

func TestCertificatesMirrorAddressJoinsSANs(t *testing.T) {
	e := newCertEnv(t, nil)
	e.reconcile()
	if s := strings.Join(e.store.PKI().Server.IPAddresses, ","); strings.Contains(s, "10.0.0.9") {
		t.Fatalf("no mirror yet, but its address is a SAN: %s", s)
	}
	next := *e.spec
	next.Mirror = &v1alpha1.MirrorSpec{Address: "10.0.0.9:5001"}
	e.spec = &next
	e.reconcile()
	p := e.store.PKI()
	if p.Generation != 2 || !strings.Contains(strings.Join(p.Server.IPAddresses, ","), "10.0.0.9") {
		t.Fatalf("the mirror's address is not in the reissued certificate: %+v", p.Server)
	}
	e.reconcile()
	if e.store.PKI().Generation != 2 {
		t.Fatal("an unchanged mirror address must not reissue again")
	}
}

// The old CA is retired only once the mirror, which serves the same
// certificate, was restarted for the new generation too.
func TestOldServerRetiredWaitsForTheMirror(t *testing.T) {
	e := newCertEnv(t, nil)
	spec := *e.spec
	spec.Marathon = &v1alpha1.MarathonSpec{URLs: []string{"http://127.0.0.1:1"}}
	spec.App = &v1alpha1.AppSpec{ID: "/registry"}
	spec.Mirror = &v1alpha1.MirrorSpec{ID: "/registry-mirror", Address: "10.0.0.9:5001"}
	g := &gates{spec: &spec, store: e.store}
	e.store.SetApp(state.App{ID: "/registry", RestartedForGeneration: 3})
	if ok, why := g.OldServerRetired(3, time.Time{}); ok || !strings.Contains(why, "/registry-mirror") {
		t.Fatalf("mirror not observed: %v %q", ok, why)
	}
	e.store.SetApp(state.App{ID: "/registry-mirror", RestartedForGeneration: 2})
	if ok, why := g.OldServerRetired(3, time.Time{}); ok || !strings.Contains(why, "generation 3") {
		t.Fatalf("mirror on the old generation: %v %q", ok, why)
	}
	e.store.SetApp(state.App{ID: "/registry-mirror", RestartedForGeneration: 3})
	if ok, why := g.OldServerRetired(3, time.Time{}); !ok {
		t.Fatalf("both restarted: %q", why)
	}
}
