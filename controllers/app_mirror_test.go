package controllers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

const mirrorID = v1alpha1.DefaultMirrorID

// newMirrorEnv is the app environment with a mirror on the registry's
// agent whose upstream needs credentials.
func newMirrorEnv(t *testing.T) *appEnv {
	dir := t.TempDir()
	user, pw := filepath.Join(dir, "hub-user"), filepath.Join(dir, "hub-password")
	for p, s := range map[string]string{user: "hubuser\n", pw: "hub-s3cret\n"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return newAppEnv(t, func(s *v1alpha1.Spec) {
		s.Mirror = &v1alpha1.MirrorSpec{Address: "mirror.test:5001", RemoteUsernameFile: user, RemotePasswordFile: pw,
			Constraints: [][]string{{"hostname", "LIKE", "agent-1"}}}
		v1alpha1.Default(&v1alpha1.Registry{Spec: *s})
		s.Mirror.Enabled, s.Mirror.ID = ptrTo(true), mirrorID
	})
}

// issueBoth issues a certificate for the registry and the mirror, with the
// server key the mirror's config derives its HTTP secret from, and reports
// it placed with both apps' config files.
func (e *appEnv) issueBoth(serial int64) {
	e.t.Helper()
	e.exec.place(e.ca.issue(e.store, serial, "registry.test", "mirror.test"))
	pk := e.store.PKI()
	pk.ServerKey = []byte("server-key")
	e.store.SetPKI(pk)
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: pk.ServerHash})
	e.placeConfig()
	m, _ := servedAppFor(e.spec.Load(), mirrorID)
	cfg, err := m.render(e.spec.Load(), e.store, os.ReadFile)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store.SetAppConfigPlaced(mirrorID, "198.18.0.11", cfg.Hash)
}

func (e *appEnv) settleKey(key string) error {
	e.t.Helper()
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := e.rec.Reconcile(ctx, key)
		cancel()
		if err != nil || res.RequeueAfter == 0 {
			return err
		}
		e.idle()
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("%s never settled", key)
	return nil
}

func TestAppMirrorCreatedFromItsConfigFile(t *testing.T) {
	e := newMirrorEnv(t)
	spec := e.spec.Load()
	if keys := AppKeys(spec); len(keys) != 2 || keys[1] != mirrorID {
		t.Fatalf("AppKeys = %v", keys)
	}
	e.issueBoth(100)
	if err := e.settleKey("/registry"); err != nil {
		t.Fatal(err)
	}
	regProbe := e.store.Probe()
	if err := e.settleKey(mirrorID); err != nil {
		t.Fatal(err)
	}
	raw, ok := e.sim.App(mirrorID)
	if !ok {
		t.Fatal("no mirror app in Marathon")
	}
	if strings.Contains(string(raw), "hub-s3cret") || strings.Contains(string(raw), "hubuser") {
		t.Errorf("the upstream credentials reached Marathon: %s", raw)
	}
	var app struct {
		Args      []string          `json:"args"`
		Labels    map[string]string `json:"labels"`
		Container struct {
			Volumes []struct{ ContainerPath, HostPath, Mode string } `json:"volumes"`
		} `json:"container"`
	}
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatal(err)
	}
	if strings.Join(app.Args, " ") != "serve "+marathon.ConfigContainerPath || app.Labels[marathon.ConfigLabel] == "" ||
		app.Labels[marathon.OwnerLabel] != "registry" {
		t.Errorf("mirror app: args %v labels %v", app.Args, app.Labels)
	}
	vols := map[string]string{}
	for _, v := range app.Container.Volumes {
		vols[v.ContainerPath] = v.HostPath
	}
	if vols[marathon.CertsContainerPath] != v1alpha1.DefaultMirrorCertsHost || vols[marathon.DataContainerPath] != v1alpha1.DefaultMirrorDataHost {
		t.Errorf("mirror volumes: %v", vols)
	}
	a, ok := e.store.App(mirrorID)
	if !ok || !a.Exists || !a.InSync || a.Healthy != 1 || a.ServedSerial != "64" || a.RestartedForGeneration != 1 {
		t.Errorf("mirror state: %+v", a)
	}
	if h := testutil.ToFloat64(e.metrics.AppInstances.WithLabelValues(mirrorID, "healthy")); h != 1 {
		t.Errorf("registry_operator_app_instances{app=%q,state=healthy} = %v", mirrorID, h)
	}
	if p := e.store.Probe(); p.Checked != regProbe.Checked || p.Serial != regProbe.Serial {
		t.Errorf("the mirror's probe replaced the registry's: %+v", p)
	}

	// A rotation: the mirror restarts only once its agent holds the new
	// certificate, then serves it.
	e.sim.ResetWrites()
	e.exec.place(e.ca.issue(e.store, 101, "registry.test", "mirror.test"))
	pk := e.store.PKI()
	pk.ServerKey = []byte("server-key")
	e.store.SetPKI(pk)
	if res, err := e.rec.Reconcile(context.Background(), mirrorID); err != nil || res.RequeueAfter == 0 || len(e.writes()) != 0 {
		t.Fatalf("before placement: %+v %v %+v", res, err, e.writes())
	}
	e.issueBothPlaced()
	if err := e.settleKey(mirrorID); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 1 || w[0].Path != "/v2/apps/registry-mirror/restart" {
		t.Fatalf("want one mirror restart, got %+v", w)
	}
	if a, _ := e.store.App(mirrorID); !a.InSync || a.ServedSerial != "65" {
		t.Errorf("after rotation: %+v", a)
	}
}

// issueBothPlaced reports the certificate issued last as placed.
func (e *appEnv) issueBothPlaced() {
	pk := e.store.PKI()
	pk.ServerKey = []byte("server-key")
	e.store.SetPKI(pk)
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: pk.ServerHash})
}

func TestAppMirrorWaitsForItsConfig(t *testing.T) {
	e := newMirrorEnv(t)
	e.issueBoth(100)
	e.store.SetAppConfigPlaced(mirrorID, "198.18.0.11", "")
	res, err := e.rec.Reconcile(context.Background(), mirrorID)
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, ok := e.sim.App(mirrorID); ok {
		t.Fatal("the mirror was created before its config.yml was placed")
	}
	a, _ := e.store.App(mirrorID)
	if len(a.Diff) == 0 || !strings.Contains(a.Diff[len(a.Diff)-1], "waiting for placement of config.yml") {
		t.Errorf("diff: %q", a.Diff)
	}
}
