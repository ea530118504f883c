package controllers

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
)

func (e *appEnv) app() state.App {
	e.t.Helper()
	a, ok := e.store.App("/registry")
	if !ok {
		e.t.Fatal("no state for /registry")
	}
	return a
}

func (e *appEnv) gauge(state string) float64 {
	return testutil.ToFloat64(e.metrics.AppInstances.WithLabelValues("/registry", state))
}

func (e *appEnv) outOfSync() float64 {
	return testutil.ToFloat64(e.metrics.OutOfSync.WithLabelValues(reconciler.App, "/registry"))
}

func (e *appEnv) drift() float64 {
	return testutil.ToFloat64(e.metrics.DriftCorrections.WithLabelValues(reconciler.App))
}

// marathonApp reads the app as Marathon stores it.
func (e *appEnv) marathonApp() map[string]any {
	e.t.Helper()
	raw, ok := e.sim.App("/registry")
	if !ok {
		e.t.Fatal("app /registry does not exist in Marathon")
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// placeConfig reports the current config.yml as placed on the agent, as
// the placement reconciler does once it wrote it.
func (e *appEnv) placeConfig() string {
	e.t.Helper()
	cfg, err := renderRegistryConfig(e.spec.Load(), e.store.PKI(), e.store.RegistryMaintenance(), os.ReadFile)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store.SetRegistryConfigPlaced("198.18.0.11", cfg.Hash)
	return cfg.Hash
}

// createHealthy brings the registry app up and checks it is in sync.
func (e *appEnv) createHealthy() {
	e.t.Helper()
	e.exec.place(e.ca.issue(e.store, 100))
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: e.store.PKI().ServerHash})
	e.placeConfig()
	if err := e.settle(); err != nil {
		e.t.Fatalf("settle after create: %v", err)
	}
	a := e.app()
	if !a.Exists || !a.InSync || a.Healthy != 1 || a.Running != 1 || len(a.Diff) != 0 {
		e.t.Fatalf("after create: %+v", a)
	}
}

func TestAppCreateThenNoWrite(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	w := e.writes()
	if len(w) != 1 || w[0].Method != "POST" || w[0].Path != "/v2/apps" {
		t.Fatalf("want one POST /v2/apps, got %+v", w)
	}
	got := e.marathonApp()
	if img := got["container"].(map[string]any)["docker"].(map[string]any)["image"]; img != "registry:2.8.3" {
		t.Errorf("image %v", img)
	}
	if e.gauge("desired") != 1 || e.gauge("running") != 1 || e.gauge("healthy") != 1 || e.outOfSync() != 0 {
		t.Errorf("metrics: desired %v running %v healthy %v out_of_sync %v", e.gauge("desired"),
			e.gauge("running"), e.gauge("healthy"), e.outOfSync())
	}
	if p := e.store.Probe(); !p.Success || p.Serial != "64" {
		t.Errorf("probe: %+v", p)
	}
	// Later passes: nothing to do, nothing written.
	e.sim.ResetWrites()
	for range 3 {
		if res, err := e.reconcile(); err != nil || res.RequeueAfter != 0 {
			t.Fatalf("no-op pass: %+v %v", res, err)
		}
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("no-op passes wrote: %+v", w)
	}
	if e.drift() != 0 {
		t.Errorf("drift counted on a clean create: %v", e.drift())
	}
}

func TestAppRepairsManualEdits(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	cases := []struct {
		name, method, path, body string
		wantDiff                 string
	}{
		{"scaled to 0", "PUT", "/v2/apps/registry", `{"instances":0}`, "instances: 0 -> 1"},
		{"image changed", "PUT", "/v2/apps/registry",
			`{"container":{"type":"DOCKER","docker":{"image":"registry:2"},"portMappings":[{"containerPort":5000,"name":"registry","labels":{"VIP_0":"192.168.0.1:443"}}],` +
				`"volumes":[{"containerPath":"/certs","hostPath":"/etc/privateregistry/certs","mode":"RO"},{"containerPath":"/var/lib/registry","hostPath":"/data/docker-registry","mode":"RW"}]}}`,
			"container.docker.image: registry:2 -> registry:2.8.3"},
		{"label removed", "PUT", "/v2/apps/registry", `{"labels":{"registry-operator/owner":"registry"}}`,
			"labels.HAPROXY_GROUP: <unset> -> external"},
		{"app deleted", "DELETE", "/v2/apps/registry", ``, "app: <unset> -> create registry:2.8.3"},
	}
	for i, c := range cases {
		e.human(c.method, c.path, c.body)
		e.idle()
		e.sim.ResetWrites()
		if _, err := e.reconcile(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d := e.app().Diff; !slices.Contains(d, c.wantDiff) {
			t.Errorf("%s: diff %q lacks %q", c.name, d, c.wantDiff)
		}
		if err := e.settle(); err != nil {
			t.Fatalf("%s: settle: %v", c.name, err)
		}
		w := e.writes()
		if len(w) != 1 || (w[0].Method != "PUT" && w[0].Method != "POST") {
			t.Errorf("%s: want one repairing write, got %+v", c.name, w)
		}
		if a := e.app(); !a.InSync || a.Healthy != 1 {
			t.Errorf("%s: not repaired: %+v", c.name, a)
		}
		if got := e.drift(); got != float64(i+1) {
			t.Errorf("%s: drift_corrections_total = %v, want %d", c.name, got, i+1)
		}
	}
	// Fields a human adds that the spec does not own are left alone.
	e.human("PUT", "/v2/apps/registry", `{"labels":{"registry-operator/owner":"registry","HAPROXY_GROUP":"external",`+
		`"registry-operator/config":"`+e.placeConfig()+`",`+
		`"registry-operator/owned-labels":"HAPROXY_GROUP","team":"infra"},"acceptedResourceRoles":["*"]}`)
	e.idle()
	e.sim.ResetWrites()
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("a human's extra label caused writes: %+v", w)
	}
}

func TestAppSpecChangeUpdatesKeepingHumanLabels(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.human("PUT", "/v2/apps/registry", `{"labels":{"registry-operator/owner":"registry","HAPROXY_GROUP":"external",`+
		`"registry-operator/config":"`+e.placeConfig()+`",`+
		`"registry-operator/owned-labels":"HAPROXY_GROUP","team":"infra"}}`)
	e.idle()
	e.setSpec(func(s *v1alpha1.Spec) {
		s.App.Image = "registry:3.0.0"
		s.App.Labels = map[string]string{"HAPROXY_GROUP": "internal"}
	})
	e.sim.ResetWrites()
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	w := e.writes()
	if len(w) != 1 || w[0].Method != "PUT" {
		t.Fatalf("want one PUT, got %+v", w)
	}
	if strings.Contains(string(w[0].Body), "not-a-real-secret") {
		t.Errorf("PUT body carries the http secret: it belongs in config.yml on the agents")
	}
	labels := e.marathonApp()["labels"].(map[string]any)
	if labels["team"] != "infra" || labels["HAPROXY_GROUP"] != "internal" {
		t.Errorf("labels after update: %v", labels)
	}
	if e.drift() != 0 {
		t.Errorf("a spec change counted as drift")
	}
}

func TestAppReportModeWritesNothing(t *testing.T) {
	e := newAppEnv(t, func(s *v1alpha1.Spec) { s.Reconcile.Mode = v1alpha1.ModeReport })
	e.ca.issue(e.store, 100)
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("report pass: %+v %v", res, err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("report mode wrote: %+v", w)
	}
	a := e.app()
	// The create, and why it would wait: placement places nothing in report mode.
	if a.Exists || a.InSync || len(a.Diff) != 2 || !strings.HasPrefix(a.Diff[1], "config: waiting for placement") || e.outOfSync() != 1 {
		t.Errorf("report state: %+v out_of_sync %v", a, e.outOfSync())
	}
}

func TestAppUnhealthyIsOutOfSync(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.exec.SetMode("/registry", marathonsim.NeverHealthy)
	time.Sleep(20 * time.Millisecond) // emulator ticks run the health checks
	_, err := e.reconcile()
	if err == nil || !strings.Contains(err.Error(), "healthy") {
		t.Fatalf("want an unhealthy error, got %v", err)
	}
	if e.outOfSync() != 1 || e.gauge("healthy") != 0 {
		t.Errorf("out_of_sync %v healthy %v", e.outOfSync(), e.gauge("healthy"))
	}
}

func TestAppRotationRestartsAndVerifies(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.sim.ResetWrites()
	launched := e.exec.Launched("/registry")

	// A new server certificate: not yet placed on the registry's agent.
	next := e.ca.issue(e.store, 101)
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("before placement: %+v %v", res, err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("restarted before placement: %+v", w)
	}
	if d := e.app().Diff; len(d) != 1 || !strings.Contains(d[0], "waiting for placement on 198.18.0.11") {
		t.Errorf("diff: %q", d)
	}
	// Placement reports the new chain on the agent: restart, then verify.
	e.exec.place(next)
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: e.store.PKI().ServerHash})
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	w := e.writes()
	if len(w) != 1 || w[0].Method != "POST" || w[0].Path != "/v2/apps/registry/restart" {
		t.Fatalf("want one restart, got %+v", w)
	}
	if e.exec.Launched("/registry") <= launched {
		t.Error("no task was relaunched")
	}
	a := e.app()
	if !a.InSync || a.RestartedForGeneration != 2 || a.ServedSerial != "65" {
		t.Errorf("after rotation: %+v", a)
	}
	if p := e.store.Probe(); !p.Success || testutil.ToFloat64(e.metrics.ProbeSuccess) != 1 {
		t.Errorf("probe after rotation: %+v", p)
	}
	// Later passes do not restart again.
	e.sim.ResetWrites()
	if err := e.settle(); err != nil || len(e.writes()) != 0 {
		t.Fatalf("after rotation: %v %+v", err, e.writes())
	}
}

func TestAppProbeFailsOnWrongCertificate(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	// The agent serves a certificate without the registry's name, and it
	// is the current one: restarting cannot help, the probe must say why.
	e.exec.place(e.ca.issue(e.store, 300, "other.test"))
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{Hash: e.store.PKI().ServerHash})
	err := e.settle()
	if err == nil || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("want a probe error, got %v", err)
	}
	if p := e.store.Probe(); p.Success || testutil.ToFloat64(e.metrics.ProbeSuccess) != 0 {
		t.Errorf("probe: %+v", p)
	}
}

func TestAppRefusesAnotherOwnersApp(t *testing.T) {
	e := newAppEnv(t, nil)
	e.ca.issue(e.store, 100)
	e.human("POST", "/v2/apps", `{"id":"/registry","cmd":"sleep 1000","labels":{"registry-operator/owner":"other"}}`)
	e.idle()
	e.sim.ResetWrites()
	_, err := e.reconcile()
	if !manager.IsTerminal(err) || !strings.Contains(err.Error(), "another registry owns it") {
		t.Fatalf("got %v", err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("wrote to another owner's app: %+v", w)
	}
}

func TestAppForgetsKeysTheSpecDropped(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.setSpec(func(s *v1alpha1.Spec) { s.App.Enabled = ptrTo(false) })
	e.sim.ResetWrites()
	if res, err := e.reconcile(); err != nil || res.RequeueAfter != 0 {
		t.Fatal(res, err)
	}
	if _, ok := e.store.App("/registry"); ok {
		t.Error("state kept for an app the spec dropped")
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("dropping an app from the spec wrote to Marathon: %+v", w)
	}
	if _, ok := e.sim.App("/registry"); !ok {
		t.Fatal("the app was deleted")
	}
}

func TestAppKeys(t *testing.T) {
	s := &v1alpha1.Spec{Marathon: &v1alpha1.MarathonSpec{}, App: &v1alpha1.AppSpec{ID: "/registry"},
		UI: &v1alpha1.UISpec{ID: "/registry-ui"}}
	if k := AppKeys(s); !slices.Equal(k, []string{"/registry"}) {
		t.Errorf("UI off by default: %v", k)
	}
	s.UI.Enabled = ptrTo(true)
	if k := AppKeys(s); !slices.Equal(k, []string{"/registry", "/registry-ui"}) {
		t.Errorf("keys %v", k)
	}
}

func TestAppReportModeRecordsDrift(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.setSpec(func(s *v1alpha1.Spec) { s.Reconcile.Mode = v1alpha1.ModeReport })
	e.human("PUT", "/v2/apps/registry", `{"instances":0}`)
	e.idle()
	e.sim.ResetWrites()
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("report mode wrote: %+v", w)
	}
	if d := e.app().Diff; !slices.Equal(d, []string{"instances: 0 -> 1"}) || e.outOfSync() != 1 {
		t.Errorf("diff %q out_of_sync %v", d, e.outOfSync())
	}
}

func TestAppUI(t *testing.T) {
	e := newAppEnv(t, func(s *v1alpha1.Spec) {
		s.UI = &v1alpha1.UISpec{Enabled: ptrTo(true)}
		v1alpha1.Default(&v1alpha1.Registry{Spec: *s}) // fills the UI's defaults through the shared pointer
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 50 {
		res, err := e.rec.Reconcile(ctx, "/registry-ui")
		if err == nil && res.RequeueAfter == 0 {
			break
		}
		e.idle()
		time.Sleep(5 * time.Millisecond)
	}
	a, ok := e.store.App("/registry-ui")
	if !ok || !a.InSync || a.Healthy != 1 {
		t.Fatalf("UI app: %+v", a)
	}
	e.sim.ResetWrites()
	if res, err := e.rec.Reconcile(ctx, "/registry-ui"); err != nil || res.RequeueAfter != 0 || len(e.writes()) != 0 {
		t.Fatalf("UI no-op pass: %+v %v %+v", res, err, e.writes())
	}
}

func TestAppWatchEnqueuesAppEvents(t *testing.T) {
	e := newAppEnv(t, func(s *v1alpha1.Spec) { s.Marathon.EventStream = nil })
	e.createHealthy()
	keys := make(chan string, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.rec.Watch(ctx, func(k string) { keys <- k }) }()
	if k := <-keys; k != "/registry" { // attach: resync everything
		t.Fatalf("first key %q", k)
	}
	e.human("PUT", "/v2/apps/registry", `{"instances":2}`)
	e.human("POST", "/v2/apps", `{"id":"/not-ours","cmd":"sleep 1000"}`)
	e.idle()
	select {
	case k := <-keys:
		if k != "/registry" {
			t.Errorf("enqueued %q, which the spec does not name", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the scaled app")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch: %v", err)
	}
	close(keys)
	for k := range keys {
		if k != "/registry" {
			t.Errorf("enqueued %q, which the spec does not name", k)
		}
	}
}

// Right after the app is created its task may run before the registry
// listens: a probe that cannot connect, with no health result from
// Marathon yet, is a registry starting, not one to restart. Once it
// serves the current certificate it is adopted without a restart; had
// Marathon called it healthy while the probe still failed, it would be
// restarted.
func TestAppNoRestartWhileTheNewRegistryStarts(t *testing.T) {
	for _, healthyButFailing := range []bool{false, true} {
		e := newAppEnv(t, nil)
		e.exec.place(e.ca.issue(e.store, 100))
		e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: e.store.PKI().ServerHash})
		e.placeConfig()
		e.notListening.Store(true)
		e.noHealthYet.Store(true)
		restarts := func() int {
			n := 0
			for _, w := range e.writes() {
				if strings.HasSuffix(w.Path, "/restart") {
					n++
				}
			}
			return n
		}
		waited := 0
		for i := 0; i < 100 && waited < 3; i++ {
			_, err := e.reconcile()
			if restarts() != 0 {
				t.Fatalf("restarted a registry that was still starting (pass %d)", i)
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := e.app().Diff; len(d) == 1 && strings.Contains(d[0], "waits") {
				waited++
			}
			e.idle()
			time.Sleep(5 * time.Millisecond)
		}
		if waited < 3 {
			t.Fatalf("never waited for the starting registry: %+v", e.app())
		}
		if healthyButFailing {
			e.noHealthYet.Store(false) // Marathon: healthy; the probe: still no connection
			for i := 0; i < 20 && restarts() == 0; i++ {
				_, _ = e.reconcile()
				time.Sleep(5 * time.Millisecond)
			}
			if restarts() != 1 {
				t.Fatalf("healthy by Marathon and the probe fails: %d restarts, want 1", restarts())
			}
			continue
		}
		e.notListening.Store(false)
		e.noHealthYet.Store(false)
		if err := e.settle(); err != nil {
			t.Fatal(err)
		}
		if a := e.app(); restarts() != 0 || !a.InSync || a.RestartedForGeneration != e.store.PKI().Generation {
			t.Fatalf("adopted without a restart: %d restarts, %+v", restarts(), a)
		}
	}
}
