package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/procstat"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// fleetEnv runs the real node reconcilers, over the real executor, against
// a fleet of real sshd hosts.
type fleetEnv struct {
	f       *testfleet.Fleet
	spec    *v1alpha1.Spec
	store   *state.Store
	metrics *metrics.Metrics
	exec    *nodes.Executor
	mesos   *fakeLister
	disc    *Discovery
	recs    map[string]interface {
		Reconcile(context.Context, string) (manager.Result, error)
	}
	mu     sync.Mutex
	queued map[string]bool
}

type fleetPKI struct {
	pki             state.PKI
	caPEM           []byte
	certPEM, keyPEM []byte
}

// newFleetPKI issues a CA and a server certificate for ip, as the
// certificate reconciler would.
func newFleetPKI(t *testing.T, ip string) fleetPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		IPAddresses: []net.IP{net.ParseIP(ip)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	p := fleetPKI{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	chain := append(append([]byte{}, p.certPEM...), p.caPEM...)
	p.pki = state.PKI{Ready: true, Mode: v1alpha1.TLSSelfSigned, Bundle: p.caPEM, BundleHash: state.Hash(p.caPEM),
		ServerChain: chain, ServerHash: state.Hash(chain), ServerKey: p.keyPEM, Generation: 1}
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newFleetEnv(t *testing.T, n int, edit func(*v1alpha1.Spec, *testfleet.Fleet)) *fleetEnv {
	t.Helper()
	return newFleetEnvOpts(t, testfleet.Options{N: n}, edit)
}

func newFleetEnvOpts(t *testing.T, opts testfleet.Options, edit func(*v1alpha1.Spec, *testfleet.Fleet)) *fleetEnv {
	t.Helper()
	n := opts.N
	f := testfleet.StartT(t, opts)
	e := &fleetEnv{f: f, store: state.New(), metrics: metrics.New(metrics.BuildInfo{}), mesos: &fakeLister{},
		queued: map[string]bool{}}
	for i := range n {
		h := f.Host(i)
		e.mesos.agents = append(e.mesos.agents, nodes.Agent{Address: h.Address, Hostname: h.Name, Source: nodes.SourceMesos})
	}
	reg := &v1alpha1.Registry{Spec: v1alpha1.Spec{
		Nodes: &v1alpha1.NodesSpec{Mesos: &v1alpha1.MesosSpec{URL: "http://127.0.0.1:5050"}, SSH: v1alpha1.SSHSpec{
			User: "root", PrivateKeyFile: f.PrivateKeyPath, KnownHostsFile: f.KnownHostsPath,
			ConnectTimeout: v1alpha1.D(3 * time.Second), CommandTimeout: v1alpha1.D(5 * time.Second)}},
		Registry:  &v1alpha1.RegistryEndpoint{Address: f.Host(0).Address + ":5000"},
		TLS:       &v1alpha1.TLSSpec{},
		Trust:     &v1alpha1.TrustSpec{Runtimes: []string{v1alpha1.RuntimeDocker, v1alpha1.RuntimeContainerd}},
		Conntrack: &v1alpha1.ConntrackSpec{},
		Marathon:  &v1alpha1.MarathonSpec{URLs: []string{"http://127.0.0.1:1"}},
		// Marathon matches the hostname Mesos reports; the key goes only
		// where the address matches too.
		App: &v1alpha1.AppSpec{Constraints: [][]string{{"hostname", "LIKE", f.Host(0).Name + "|" + regexp.QuoteMeta(f.Host(0).Address)}}},
	}}
	if edit != nil {
		edit(&reg.Spec, f)
	}
	v1alpha1.Default(reg)
	e.spec = &reg.Spec
	log := testr.New(t)
	e.exec = nodes.NewExecutor(e.metrics, clock.RealClock{}, log)
	t.Cleanup(e.exec.Close)
	deps := Deps{Spec: func() *v1alpha1.Spec { return e.spec }, Store: e.store, Metrics: e.metrics,
		Clock: clock.RealClock{}, Log: log}
	nodeOpts := NodeOptions{Exec: e.exec}
	e.disc = NewDiscovery(deps, DiscoveryOptions{Agents: e.mesos, Conns: e.exec, Enqueue: func(r, k string) {
		e.mu.Lock()
		e.queued[r+"|"+k] = true
		e.mu.Unlock()
	}})
	e.recs = map[string]interface {
		Reconcile(context.Context, string) (manager.Result, error)
	}{reconciler.Trust: NewTrust(deps, nodeOpts), reconciler.Conntrack: NewConntrack(deps, nodeOpts),
		reconciler.Placement: NewPlacement(deps, nodeOpts)}
	return e
}

// pass is one interval of `run`: discovery, then every queued node key, in
// parallel as the manager's workers would. It returns the errors by
// "reconciler|node".
func (e *fleetEnv) pass(t *testing.T) map[string]error {
	t.Helper()
	ctx := context.Background()
	errs := map[string]error{}
	if _, err := e.disc.Reconcile(ctx, FleetKey); err != nil {
		errs["discovery"] = err
	}
	e.mu.Lock()
	keys := e.queued
	e.queued = map[string]bool{}
	e.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range keys {
		r, node, _ := strings.Cut(k, "|")
		rec, ok := e.recs[r]
		if !ok {
			// A reconciler this env does not run (credentials, with auth
			// on: its tests build their own, with per-host paths; the
			// fleet's hosts share the machine's /etc).
			continue
		}
		wg.Go(func() {
			_, err := rec.Reconcile(ctx, node)
			if err != nil {
				mu.Lock()
				errs[k] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

func (e *fleetEnv) read(t *testing.T, h *testfleet.Host, p string) string {
	t.Helper()
	b, err := h.ReadFile(context.Background(), p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func (e *fleetEnv) caPath(h *testfleet.Host) string {
	return "/etc/docker/certs.d/" + e.spec.Registry.Address + "/ca.crt"
}

// converged checks every file and value the node reconcilers own.
func (e *fleetEnv) converged(t *testing.T, p fleetPKI, h *testfleet.Host) {
	t.Helper()
	ctx := context.Background()
	if got := e.read(t, h, e.caPath(h)); got != string(p.caPEM) {
		t.Errorf("%s: ca.crt = %q", h.Name, got)
	}
	if got := e.read(t, h, "/etc/containerd/certs.d/"+e.spec.Registry.Address+"/hosts.toml"); !strings.Contains(got, "ca = ") {
		t.Errorf("%s: hosts.toml = %q", h.Name, got)
	}
	if e.f.ConntrackAvailable {
		if v, err := h.Sysctl(ctx, BeLiberalKey); err != nil || v != "1" {
			t.Errorf("%s: %s = %q (%v)", h.Name, BeLiberalKey, v, err)
		}
	}
	if got := e.read(t, h, v1alpha1.DefaultPersistFile); !strings.Contains(got, BeLiberalKey+" = 1") {
		t.Errorf("%s: persist file = %q", h.Name, got)
	}
	if got := e.read(t, h, v1alpha1.DefaultModulesLoadFile); !strings.Contains(got, "nf_conntrack") {
		t.Errorf("%s: modules-load file = %q", h.Name, got)
	}
	keyPath := v1alpha1.DefaultCertsHostPath + "/tls.key"
	if h.Index == 0 {
		st, err := h.Stat(ctx, keyPath)
		if err != nil || st.Mode().Perm() != 0o600 || e.read(t, h, keyPath) != string(p.keyPEM) {
			t.Errorf("%s: tls.key %v %v", h.Name, st, err)
		}
	} else if _, err := h.Stat(ctx, keyPath); err == nil {
		t.Errorf("%s: the server key was placed on an agent the constraints exclude", h.Name)
	}
}

func TestFleetConvergesAndRepairsDrift(t *testing.T) {
	e := newFleetEnv(t, 5, nil)
	t.Logf("conntrack sysctl available on the hosts: %v", e.f.ConntrackAvailable)
	p := newFleetPKI(t, e.f.Host(0).Address)
	e.store.SetPKI(p.pki)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("first pass: %v", errs)
	}
	for i := range 5 {
		e.converged(t, p, e.f.Host(i))
	}
	if v := gauge(e.metrics, metrics.NodeInSync); v != 5 {
		t.Errorf("nodes{in_sync} = %v, want 5", v)
	}

	// Steady state: no new session, so no process starts on any node.
	sessions := counter(e.metrics.SSHSessions)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("steady pass: %v", errs)
	}
	if d := counter(e.metrics.SSHSessions) - sessions; d != 0 {
		t.Errorf("steady-state pass opened %v SSH sessions, want 0", d)
	}
	for _, n := range e.store.Nodes() {
		for r, c := range n.Concerns {
			if !c.InSync || len(c.Changes) > 0 {
				t.Errorf("%s %s after a steady pass: %+v", n.Address, r, c)
			}
		}
	}

	// Drift: a deleted ca.crt, a hand-edited one, a reboot's sysctl 0.
	ctx := context.Background()
	h0, h1, h2 := e.f.Host(0), e.f.Host(1), e.f.Host(2)
	must(t, h0.Remove(ctx, e.caPath(h0)))
	must(t, h1.WriteFile(ctx, e.caPath(h1), []byte("edited by hand\n"), 0o644))
	wantDrift := 2.0
	if e.f.ConntrackAvailable {
		must(t, h2.SetSysctl(ctx, BeLiberalKey, "0"))
		wantDrift++
	}
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("repair pass: %v", errs)
	}
	for i := range 5 {
		e.converged(t, p, e.f.Host(i))
	}
	got := counter(e.metrics.DriftCorrections.WithLabelValues(reconciler.Trust)) +
		counter(e.metrics.DriftCorrections.WithLabelValues(reconciler.Conntrack))
	if got != wantDrift {
		t.Errorf("drift corrections = %v, want %v", got, wantDrift)
	}
}

func TestFleetReportModeChangesNothing(t *testing.T) {
	e := newFleetEnv(t, 1, func(s *v1alpha1.Spec, _ *testfleet.Fleet) { s.Reconcile.Mode = v1alpha1.ModeReport })
	p := newFleetPKI(t, e.f.Host(0).Address)
	e.store.SetPKI(p.pki)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("report pass: %v", errs)
	}
	h := e.f.Host(0)
	if _, err := h.Stat(context.Background(), e.caPath(h)); err == nil {
		t.Error("report mode wrote ca.crt")
	}
	n, _ := e.store.Node(h.Address)
	changes := strings.Join(n.Concerns[reconciler.Trust].Changes, "\n")
	if !strings.Contains(changes, "create "+e.caPath(h)+" (sha256 "+p.pki.BundleHash[:12]) {
		t.Errorf("trust changes:\n%s", changes)
	}
	if e.f.ConntrackAvailable {
		if v, _ := h.Sysctl(context.Background(), BeLiberalKey); v == "0" &&
			!strings.Contains(strings.Join(n.Concerns[reconciler.Conntrack].Changes, "\n"), "sysctl "+BeLiberalKey+" 0 -> 1") {
			t.Errorf("conntrack changes: %q", n.Concerns[reconciler.Conntrack].Changes)
		}
	}
}

func TestFleetFaults(t *testing.T) {
	e := newFleetEnv(t, 4, nil)
	p := newFleetPKI(t, e.f.Host(0).Address)
	e.store.SetPKI(p.pki)
	ctx := context.Background()
	down, badKey, ro := e.f.Host(1), e.f.Host(2), e.f.Host(3)
	must(t, down.SetLinkUp(ctx, false))
	t.Cleanup(func() { _ = down.SetLinkUp(context.Background(), true) })
	_, err := badKey.ReplaceHostKey(ctx, false)
	must(t, err)
	_, err = ro.Exec(ctx, "mount", "-o", "remount,ro,bind", "/etc/docker")
	must(t, err)

	errs := e.pass(t)
	e.converged(t, p, e.f.Host(0)) // the healthy node converges in the same pass
	if err := errs["trust|"+down.Address]; !nodes.IsUnreachable(err) {
		t.Errorf("unreachable node: %v", err)
	}
	if err := errs["trust|"+badKey.Address]; !nodes.IsHostKeyError(err) || !isTerminal(err) {
		t.Errorf("host key mismatch: %v", err)
	}
	if v := counter(e.metrics.HostKeyMismatch.WithLabelValues(badKey.Address)); v < 1 {
		t.Errorf("host key mismatch counter = %v", v)
	}
	if err := errs["trust|"+ro.Address]; err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only node: %v", err)
	}
	if n, _ := e.store.Node(ro.Address); !n.Reachable || n.Concerns[reconciler.Trust].InSync {
		t.Errorf("read-only node state: %+v", n)
	}
	if v := gauge(e.metrics, metrics.NodeUnreachable); v != 2 {
		t.Errorf("nodes{unreachable} = %v, want 2", v)
	}
}

func TestFleetSudoRefused(t *testing.T) {
	e := newFleetEnv(t, 1, func(s *v1alpha1.Spec, f *testfleet.Fleet) {
		s.Nodes.SSH.User, s.Nodes.SSH.Sudo = f.PlainUser, ptrTo(true)
	})
	e.store.SetPKI(newFleetPKI(t, e.f.Host(0).Address).pki)
	errs := e.pass(t)
	err := errs["trust|"+e.f.Host(0).Address]
	if err == nil || !strings.Contains(err.Error(), "sudo -n refused") {
		t.Fatalf("got %v, want a sudo refusal", err)
	}

	// The same node with a sudo user converges, files owned by root.
	e.spec.Nodes.SSH.User = e.f.SudoUser
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("sudo user: %v", errs)
	}
	if got := e.read(t, e.f.Host(0), e.caPath(e.f.Host(0))); !strings.HasPrefix(got, "-----BEGIN CERTIFICATE") {
		t.Errorf("ca.crt = %q", got)
	}
}

func TestFleetHangingNodeTimesOut(t *testing.T) {
	baseline := runtime.NumGoroutine()
	e := newFleetEnv(t, 2, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Nodes.SSH.CommandTimeout = v1alpha1.D(2 * time.Second)
	})
	e.store.SetPKI(newFleetPKI(t, e.f.Host(0).Address).pki)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("first pass: %v", errs)
	}
	hung := e.f.Host(1)
	pids := descendants(t, hung.HolderPID(), "sftp-server")
	if len(pids) == 0 {
		t.Fatal("no sftp-server on the node")
	}
	for _, pid := range pids {
		must(t, stopProcess(pid, true))
		t.Cleanup(func() { _ = stopProcess(pid, false) })
	}
	errs := e.pass(t)
	if err := errs["trust|"+hung.Address]; err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("hung node: %v (all: %v)", err, errs)
	}
	if _, bad := errs["trust|"+e.f.Host(0).Address]; bad {
		t.Errorf("healthy node failed: %v", errs)
	}
	e.exec.Close()
	for range 100 {
		if runtime.NumGoroutine() <= baseline+2 { // testr and the fleet may hold a couple
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines after Close, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
}

func TestFleetNodeLeavesMesos(t *testing.T) {
	e := newFleetEnv(t, 2, nil)
	e.store.SetPKI(newFleetPKI(t, e.f.Host(0).Address).pki)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("first pass: %v", errs)
	}
	gone := e.f.Host(1).Address
	e.mesos.agents = e.mesos.agents[:1]
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("second pass: %v", errs)
	}
	if _, ok := e.store.Node(gone); ok {
		t.Error("node still in the fleet")
	}
	if n := countSeries(e.metrics, gone); n != 0 {
		t.Errorf("%d series still name %s", n, gone)
	}
	if v := gauge(e.metrics, metrics.NodeInSync); v != 1 {
		t.Errorf("nodes{in_sync} = %v, want 1", v)
	}
}

// descendants lists pids under root whose command name is comm.
func descendants(t *testing.T, root int, comm string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	must(t, err)
	parent, name := map[int]int{}, map[int]string{}
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		st, err := procstat.Read(pid)
		if err != nil {
			continue
		}
		parent[pid], name[pid] = st.PPID, st.Comm
	}
	var out []int
	for pid, n := range name {
		if n != comm {
			continue
		}
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

func stopProcess(pid int, stop bool) error {
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	return syscall.Kill(pid, sig)
}

func isTerminal(err error) bool { return manager.IsTerminal(err) }

func gauge(m *metrics.Metrics, state string) float64 {
	return testutil.ToFloat64(m.Nodes.WithLabelValues(state))
}

func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// countSeries counts exported series with a label equal to value.
func countSeries(m *metrics.Metrics, value string) int {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return -1
	}
	n := 0
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetValue() == value {
					n++
				}
			}
		}
	}
	return n
}

// With hostKeyPolicy acceptNew, a real agent whose host key is not on
// record gets the server key only on a later connection, one that checks
// the key recorded on first use: the first pass is pending and says why.
func TestFleetPlacementWaitsForARecordedHostKey(t *testing.T) {
	e := newFleetEnv(t, 1, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Nodes.SSH.HostKeyPolicy = v1alpha1.HostKeyAcceptNew
		s.Nodes.SSH.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	})
	h := e.f.Host(0)
	p := newFleetPKI(t, h.Address)
	e.store.SetPKI(p.pki)
	ctx := context.Background()
	if _, err := e.disc.Reconcile(ctx, FleetKey); err != nil {
		t.Fatal(err)
	}
	r := e.recs[reconciler.Placement]
	keyPath := v1alpha1.DefaultCertsHostPath + "/tls.key"
	res, err := r.Reconcile(ctx, h.Address)
	must(t, err)
	n, _ := e.store.Node(h.Address)
	c := n.Concerns[reconciler.Placement]
	if got := e.read(t, h, keyPath); !strings.HasPrefix(got, "<") {
		t.Fatal("the key went to an agent whose host key was accepted on first use")
	}
	if c.InSync || !strings.Contains(c.Detail, "first use") || res.RequeueAfter <= 0 {
		t.Fatalf("first pass: %+v, requeue %v: want pending, the reason, a requeue", c, res.RequeueAfter)
	}
	if b, err := os.ReadFile(e.spec.Nodes.SSH.KnownHostsFile); err != nil || len(b) == 0 {
		t.Fatalf("host key not recorded: %q %v", b, err)
	}
	_, err = r.Reconcile(ctx, h.Address)
	must(t, err)
	n, _ = e.store.Node(h.Address)
	if got := e.read(t, h, keyPath); got != string(p.pki.ServerKey) || !n.Concerns[reconciler.Placement].InSync {
		t.Fatalf("second pass, key on record: key placed %v, %+v", got == string(p.pki.ServerKey), n.Concerns[reconciler.Placement])
	}
}
