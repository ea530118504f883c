package controllers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/state"
	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
)

// appEnv is the app reconciler against the Marathon emulator, through the
// real go-marathon client and raw requests, with a fake clock for the
// reconciler's deadlines and a TLS "registry" the probe reaches instead of
// the agents (tests dial loopback only).
type appEnv struct {
	t       *testing.T
	sim     *marathonsim.Server
	http    *httptest.Server
	exec    *certExec
	clock   *clocktesting.FakeClock
	store   *state.Store
	metrics *metrics.Metrics
	rec     *AppReconciler
	spec    atomic.Pointer[v1alpha1.Spec]
	ca      *testCA
	// notListening: the probe cannot connect (a registry still starting);
	// noHealthYet: Marathon has no health result for the tasks yet.
	notListening, noHealthYet atomic.Bool
}

// healthView is the Marathon client as the reconciler sees it, with the
// tasks' health results withheld while noHealthYet is set.
type healthView struct {
	MarathonClient
	e *appEnv
}

func (h healthView) GetApp(ctx context.Context, id string) (*marathon.AppStatus, error) {
	a, err := h.MarathonClient.GetApp(ctx, id)
	if err != nil || !h.e.noHealthYet.Load() {
		return a, err
	}
	a.TasksHealthy = 0
	for i := range a.Tasks {
		a.Tasks[i].HealthCheckResults = nil
	}
	return a, nil
}

// certExec runs tasks in memory; a task "reads" the certificate placed on
// its agent when it starts, like the registry reads /certs/tls.crt.
type certExec struct {
	*marathonsim.MemExec
	mu     sync.Mutex
	placed *tls.Certificate
	served *tls.Certificate
}

func (e *certExec) Launch(s marathonsim.LaunchSpec) (marathonsim.TaskHandle, error) {
	e.mu.Lock()
	e.served = e.placed
	e.mu.Unlock()
	return e.MemExec.Launch(s)
}

func (e *certExec) place(c *tls.Certificate) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.placed = c
}

func (e *certExec) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.served, nil
}

func newAppEnv(t *testing.T, edit func(*v1alpha1.Spec)) *appEnv {
	t.Helper()
	e := &appEnv{t: t, exec: &certExec{MemExec: marathonsim.NewMemExec()},
		clock: clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		store: state.New(), metrics: metrics.New(metrics.BuildInfo{}), ca: newTestCA(t)}
	e.sim = marathonsim.New(marathonsim.Options{
		Agents:   []marathonsim.Agent{{Hostname: "agent-1", IP: "198.18.0.11"}, {Hostname: "agent-2", IP: "198.18.0.12"}},
		Executor: e.exec, Tick: 2 * time.Millisecond})
	e.http = httptest.NewServer(e.sim.Handler())
	t.Cleanup(func() {
		e.http.CloseClientConnections()
		e.sim.Close()
		e.http.Close()
	})

	// The registry every task endpoint leads to.
	reg := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}))
	reg.TLS = &tls.Config{GetCertificate: e.exec.getCertificate}
	reg.StartTLS()
	t.Cleanup(reg.Close)
	regAddr := reg.Listener.Addr().String()

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "http-secret")
	if err := os.WriteFile(secretFile, []byte("not-a-real-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := v1alpha1.Registry{Metadata: v1alpha1.Metadata{Name: "registry"}, Spec: v1alpha1.Spec{
		Marathon: &v1alpha1.MarathonSpec{URLs: []string{e.http.URL}, EventStream: ptrTo(false)},
		Nodes:    &v1alpha1.NodesSpec{Static: []string{"198.18.0.11"}},
		Registry: &v1alpha1.RegistryEndpoint{Address: "registry.test:443", DNSNames: []string{"registry.test"},
			IPAddresses: []string{"198.18.0.100"}},
		TLS: &v1alpha1.TLSSpec{},
		App: &v1alpha1.AppSpec{Constraints: [][]string{{"hostname", "LIKE", "agent-1"}}, HTTPSecretFile: secretFile,
			Labels: map[string]string{"HAPROXY_GROUP": "external"}, Env: map[string]string{"REGISTRY_STORAGE_DELETE_ENABLED": "true"}},
	}}
	v1alpha1.Default(&r)
	if edit != nil {
		edit(&r.Spec)
	}
	e.spec.Store(&r.Spec)
	e.store.SetFleet([]state.Node{{Address: "198.18.0.11", Hostname: "agent-1", Source: "static"}})
	e.rec = NewApp(Deps{Spec: func() *v1alpha1.Spec { return e.spec.Load() }, Store: e.store, Metrics: e.metrics,
		Clock: e.clock, Log: testr.New(t)},
		AppOptions{Owner: "registry", PollInterval: time.Millisecond,
			NewClient: func(ms *v1alpha1.MarathonSpec) (MarathonClient, error) {
				c, err := marathon.New(marathon.OptionsFromSpec(ms, e.metrics))
				return healthView{MarathonClient: c, e: e}, err
			},
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				if e.notListening.Load() {
					return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
				}
				return (&net.Dialer{}).DialContext(ctx, network, regAddr)
			}})
	return e
}

func ptrTo[T any](v T) *T { return &v }

// setSpec replaces the spec in force (as a config reload would).
func (e *appEnv) setSpec(edit func(*v1alpha1.Spec)) {
	s := *e.spec.Load()
	a := *s.App
	s.App = &a
	edit(&s)
	e.spec.Store(&s)
}

func (e *appEnv) reconcile() (manager.Result, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.rec.Reconcile(ctx, "/registry")
}

// settle runs passes as the manager would until one asks for no requeue,
// letting the emulator's deployments run in between, and returns its error.
func (e *appEnv) settle() error {
	e.t.Helper()
	for range 200 {
		res, err := e.reconcile()
		if err != nil || res.RequeueAfter == 0 {
			return err
		}
		e.idle()
		time.Sleep(5 * time.Millisecond) // a few emulator ticks: health results arrive
	}
	e.t.Fatal("app reconciler never settled")
	return nil
}

func (e *appEnv) writes() []marathonsim.Write { return e.sim.Writes() }

// human sends a request as someone with the Marathon UI or curl would.
func (e *appEnv) human(method, path, body string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.http.URL+path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
}

// idle waits until the emulator runs no deployment.
func (e *appEnv) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.sim.WaitIdle(ctx); err != nil {
		e.t.Fatalf("emulator deployments never finished: %v", e.sim.DeploymentIDs())
	}
}

// testCA issues the certificates the certificate reconciler would.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	gen  int64
	// serverKey is every server certificate's key: renewals that keep the
	// key keep the config label (keyed with it), so the tests see the
	// restart path; a new key would change the config and update the app.
	serverKey *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{t: t, cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue publishes a new server certificate in the PKI slice (a new
// generation) and returns it for the "agent" to serve.
func (ca *testCA) issue(store *state.Store, serial int64, dnsNames ...string) *tls.Certificate {
	ca.t.Helper()
	if ca.serverKey == nil {
		ca.serverKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	key := ca.serverKey
	if dnsNames == nil {
		dnsNames = []string{"registry.test"}
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: dnsNames[0]},
		DNSNames: dnsNames, IPAddresses: []net.IP{net.ParseIP("198.18.0.100")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	ca.gen++
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	store.SetPKI(state.PKI{Ready: true, Mode: v1alpha1.TLSSelfSigned, Bundle: ca.pem, BundleHash: state.Hash(ca.pem),
		ServerChain: chain, ServerHash: state.Hash(chain), Generation: ca.gen,
		ServerKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})})
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}
