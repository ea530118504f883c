package controllers

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

var bcryptHashRE = regexp.MustCompile(`\$2[aby]\$`)

// TestAppMigratesHTTPSecretOutOfEnv: an app created by an older operator
// carries REGISTRY_HTTP_SECRET (and the listen address and TLS paths) in
// env. The operator waits until placement reports config.yml on the agent,
// then sends one update that drops them and points the registry at the
// file; neither what it sent, nor what Marathon returns, nor what the
// status shows carries the secret.
func TestAppMigratesHTTPSecretOutOfEnv(t *testing.T) {
	e := newAppEnv(t, nil)
	e.exec.place(e.ca.issue(e.store, 100))
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: e.store.PKI().ServerHash})

	// The env form, as the operator wrote it before config.yml existed.
	legacySpec := *e.spec.Load()
	legacySpec.Nodes = nil
	legacy, err := marathon.BuildRegistryApp("registry", &legacySpec, marathon.RegistryInputs{HTTPSecret: "not-a-real-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if legacy.Env[marathon.EnvHTTPSecret] == "" {
		t.Fatal("the legacy app has no secret in env: nothing to migrate")
	}
	body, _ := json.Marshal(legacy)
	e.human("POST", "/v2/apps", string(body))
	e.idle()
	e.sim.ResetWrites()

	// config.yml is not on the agent yet: no update.
	for range 3 {
		res, err := e.reconcile()
		if err != nil || res.RequeueAfter == 0 {
			t.Fatalf("waiting pass: %+v %v", res, err)
		}
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("the app was changed before placement reported config.yml: %+v", w)
	}
	if d := strings.Join(e.app().Diff, "\n"); !strings.Contains(d, "config: waiting for placement of config.yml") ||
		!strings.Contains(d, "env.REGISTRY_HTTP_SECRET: <redacted> -> removed") {
		t.Errorf("diff while waiting:\n%s", d)
	}

	e.placeConfig()
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	w := e.writes()
	if len(w) != 1 || w[0].Method != "PUT" {
		t.Fatalf("want one update, got %+v", w)
	}
	if b := string(w[0].Body); strings.Contains(b, "not-a-real-secret") || bcryptHashRE.MatchString(b) ||
		!strings.Contains(b, `"args":["serve","/certs/config.yml"]`) {
		t.Errorf("update body: %s", b)
	}
	got := e.marathonApp()
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), "not-a-real-secret") {
		t.Errorf("Marathon still holds the secret: %s", raw)
	}
	for _, k := range marathon.ReservedEnv {
		if _, ok := got["env"].(map[string]any)[k]; ok {
			t.Errorf("env %s survived the migration", k)
		}
	}
	a := e.app()
	st, _ := json.Marshal(a)
	if !a.InSync || strings.Contains(string(st), "not-a-real-secret") {
		t.Errorf("after the migration: %s", st)
	}

	// Steady state: nothing more to send.
	e.sim.ResetWrites()
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("writes after the migration: %+v", w)
	}
}

// TestAppWaitsForConfigBeforeCreate: a new registry app is created only
// once its config.yml is on the agent, so its first task finds it. An
// agent the constraints exclude (agent-2, never reached) does not hold it
// back.
func TestAppWaitsForConfigBeforeCreate(t *testing.T) {
	e := newAppEnv(t, nil)
	e.store.SetFleet([]state.Node{{Address: "198.18.0.11", Hostname: "agent-1", Source: "static"},
		{Address: "198.18.0.12", Hostname: "agent-2", Source: "static"}})
	e.exec.place(e.ca.issue(e.store, 100))
	if res, err := e.reconcile(); err != nil || res.RequeueAfter == 0 {
		t.Fatalf("first pass: %+v %v", res, err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("created before config.yml was placed: %+v", w)
	}
	// A config placed for another spec (an older http secret) is not it.
	e.store.SetRegistryConfigPlaced("198.18.0.11", "an-older-config")
	if _, err := e.reconcile(); err != nil || len(e.writes()) != 0 {
		t.Fatalf("created on an outdated config: %v %+v", err, e.writes())
	}
	e.placeConfig()
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: e.store.PKI().ServerHash})
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 1 || w[0].Method != "POST" {
		t.Fatalf("want one create, got %+v", w)
	}
}
