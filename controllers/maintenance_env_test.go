package controllers

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/gcwindow"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/state"
)

// The schedule's run in these tests: Sunday 2026-12-06 03:00 UTC.
var gcDue = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

const (
	gcAgent = "198.18.0.11"
	gcOut   = "registry/upload-probe\n1 blobs marked, 1 blobs and 0 manifests eligible for deletion\n" +
		"blob eligible for deletion: sha256:aa\ntime=x level=info msg=\"Deleting blob: /docker/registry/v2/blobs/sha256/aa\"\n"
)

// gcEnv wires the maintenance reconciler to a fake agent, a TLS test
// registry whose read-only switch follows the RegistryMaintenance view
// when the test "deploys" it, and a real directory state store.
type gcEnv struct {
	t       *testing.T
	spec    *v1alpha1.Spec
	store   *state.Store
	metrics *metrics.Metrics
	clock   *clocktesting.FakeClock
	exec    *fakeExec
	// gcExec runs garbage-collect, on connections of its own.
	gcExec *fakeExec
	pkiDir string
	rec    *Maintenance
	// readOnly is what the served registry does now; uploads counts the
	// POSTs it answered each way.
	readOnly          atomic.Bool
	refused, accepted atomic.Int32
	gcWhileReadOnly   atomic.Bool
}

func newGCEnv(t *testing.T, edit func(*v1alpha1.Spec)) *gcEnv {
	t.Helper()
	r := v1alpha1.Registry{Metadata: v1alpha1.Metadata{Name: "registry"}, Spec: v1alpha1.Spec{
		Marathon: &v1alpha1.MarathonSpec{URLs: []string{"http://127.0.0.1:1"}},
		Nodes:    &v1alpha1.NodesSpec{Static: []string{gcAgent}},
		Registry: &v1alpha1.RegistryEndpoint{Address: "registry.test:443", DNSNames: []string{"registry.test"}},
		TLS:      &v1alpha1.TLSSpec{},
		App:      &v1alpha1.AppSpec{},
		Maintenance: &v1alpha1.MaintenanceSpec{GarbageCollection: &v1alpha1.GarbageCollectionSpec{
			Schedule: "0 3 * * 0"}},
	}}
	v1alpha1.Default(&r)
	if edit != nil {
		edit(&r.Spec)
	}
	e := &gcEnv{t: t, spec: &r.Spec, store: state.New(), metrics: metrics.New(metrics.BuildInfo{}),
		clock: clocktesting.NewFakeClock(gcDue.Add(-time.Hour)), pkiDir: t.TempDir(),
		exec:   &fakeExec{nodes: map[string]*fakeNode{}, down: map[string]error{}},
		gcExec: &fakeExec{nodes: map[string]*fakeNode{}, down: map[string]error{}}}
	ca := newTestCA(t)
	cert := ca.issue(e.store, 2, "registry.test")
	e.store.SetFleet([]state.Node{{Address: gcAgent, Hostname: "agent-1", Source: "static"}})
	e.store.SetApp(state.App{ID: e.spec.App.ID, Exists: true, Hosts: []string{gcAgent},
		RestartedForGeneration: e.store.PKI().Generation})
	for _, x := range []*fakeExec{e.exec, e.gcExec} {
		n := newFakeNode()
		n.dirs[e.spec.App.DataHostPath] = true
		n.usage = nodes.FSUsage{Size: 1000, Free: 400, Avail: 350}
		x.nodes[gcAgent] = n
	}
	// garbage-collect frees 100 bytes and notes whether the registry
	// refused uploads while it ran.
	gn := e.gcExec.nodes[gcAgent]
	gn.run = func(string, []string) ([]byte, error) {
		e.gcWhileReadOnly.Store(e.readOnly.Load())
		gn.usage.Free += 100
		return []byte(gcOut), nil
	}

	reg := httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	reg.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	reg.StartTLS()
	t.Cleanup(reg.Close)
	addr := reg.Listener.Addr().String()
	var sh pki.Shared
	e.rec = NewMaintenance(Deps{Spec: func() *v1alpha1.Spec { return e.spec }, Store: e.store, Metrics: e.metrics,
		Clock: e.clock, Log: testr.New(t)}, MaintenanceOptions{Exec: e.exec, GCExec: e.gcExec,
		PKIStore: func(*v1alpha1.Spec) pki.Store {
			return sh.Part(pki.NewDirStore(e.pkiDir), pki.GCWindowFiles...)
		},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}})
	return e
}

// serve is the registry's upload endpoint.
func (e *gcEnv) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" && r.URL.Path == "/v2/"+uploadProbeRepo+"/blobs/uploads/":
		if e.readOnly.Load() {
			e.refused.Add(1)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		e.accepted.Add(1)
		w.Header().Set("Location", "/v2/"+uploadProbeRepo+"/blobs/uploads/0123")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == "DELETE":
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// deploy is placement and the app restarting the registry with the
// config the view asks for.
func (e *gcEnv) deploy() { e.readOnly.Store(e.store.RegistryMaintenance().ReadOnly) }

// gcNode is the agent as garbage-collect's connection sees it; set its
// run before the window collects.
func (e *gcEnv) gcNode() *fakeNode { return e.gcExec.nodes[gcAgent] }

func (e *gcEnv) reconcile() manager.Result {
	e.t.Helper()
	res, err := e.rec.Reconcile(context.Background(), MaintenanceKey)
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	return res
}

// window is the recorded window, nil when none.
func (e *gcEnv) window() *gcwindow.Window {
	e.t.Helper()
	w, err := loadWindow(context.Background(), pki.NewDirStore(e.pkiDir))
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *gcEnv) phase() gcwindow.Phase {
	if w := e.window(); w != nil {
		return w.Phase
	}
	return ""
}

// waitGC waits until the garbage-collect started in the background ended.
func (e *gcEnv) waitGC() {
	e.t.Helper()
	for range 500 {
		e.rec.mu.Lock()
		running := e.rec.gc.running
		e.rec.mu.Unlock()
		if !running {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatal("garbage-collect did not end")
}

func (e *gcEnv) runs(result string) float64 {
	return testutil.ToFloat64(e.metrics.GCRuns.WithLabelValues(result))
}

// blockingRun makes the agent's garbage-collect hang until release is closed.
func blockingRun(n *fakeNode) (release func()) {
	ch := make(chan struct{})
	var once sync.Once
	n.run = func(string, []string) ([]byte, error) {
		<-ch
		return []byte(gcOut), nil
	}
	return func() { once.Do(func() { close(ch) }) }
}

func stateApp(e *gcEnv, hosts []string) state.App {
	return state.App{ID: e.spec.App.ID, Exists: true, Hosts: hosts, RestartedForGeneration: e.store.PKI().Generation}
}
