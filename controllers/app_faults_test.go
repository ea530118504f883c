package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
)

// Marathon saying no: rejected definitions, 5xx, locks, stuck deployments.

func TestAppInvalidSpecIsNotResent(t *testing.T) {
	e := newAppEnv(t, func(s *v1alpha1.Spec) {
		s.App.UpgradeStrategy = &v1alpha1.UpgradeStrategy{MinimumHealthCapacity: ptrTo(2.0)}
	})
	e.exec.place(e.ca.issue(e.store, 100))
	e.placeConfig()
	for pass := range 3 {
		_, err := e.reconcile()
		if !manager.IsTerminal(err) || !strings.Contains(err.Error(), "/upgradeStrategy/minimumHealthCapacity") {
			t.Fatalf("pass %d: want a terminal error with Marathon's details, got %v", pass, err)
		}
	}
	if w := e.writes(); len(w) != 1 || w[0].Status != 422 {
		t.Errorf("want exactly one rejected POST, got %+v", w)
	}
	a := e.app()
	if !strings.Contains(a.LastError, "is greater than 1") || e.outOfSync() != 1 {
		t.Errorf("state: %+v", a)
	}
	// Fixing the spec sends again.
	e.setSpec(func(s *v1alpha1.Spec) { s.App.UpgradeStrategy = nil })
	e.exec.place(e.ca.issue(e.store, 7))
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
}

func TestAppServerErrorStormChangesNothing(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.setSpec(func(s *v1alpha1.Spec) { s.App.Image = "registry:3.0.0" })
	e.sim.ResetWrites()
	e.sim.SetFault(marathonsim.Fault{Status: 503})
	for range 3 {
		res, err := e.reconcile()
		if err == nil || manager.IsTerminal(err) || !marathon.IsUnavailable(err) {
			t.Fatalf("want a retryable unavailable error, got %+v %v", res, err)
		}
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("writes during a 5xx storm: %+v", w)
	}
	a := e.app()
	if !a.Exists || a.Running != 1 || a.InSync || a.LastError == "" {
		t.Errorf("state during the storm should keep the last observation: %+v", a)
	}
	e.sim.SetFault(marathonsim.Fault{Status: 500, Methods: "PUT"})
	if _, err := e.reconcile(); !marathon.IsUnavailable(err) {
		t.Fatalf("PUT 500: %v", err)
	}
	e.sim.SetFault(marathonsim.Fault{})
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
	if img := e.marathonApp()["container"].(map[string]any)["docker"].(map[string]any)["image"]; img != "registry:3.0.0" {
		t.Errorf("after the storm: image %v", img)
	}
}

func TestAppWaitsOnLockThenForces(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	// Someone restarts the app and its new tasks never start: a stuck deployment.
	e.exec.SetMode("/registry", marathonsim.Stuck)
	e.human("POST", "/v2/apps/registry/restart", `{}`)
	e.setSpec(func(s *v1alpha1.Spec) { s.App.Image = "registry:3.0.0" })
	e.sim.ResetWrites()
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter == 0 || !strings.Contains(e.app().LastError, "waiting for deployment") {
		t.Fatalf("want a wait, got %+v %v (%+v)", res, err, e.app())
	}
	e.clock.Step(9 * time.Minute)
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("wrote before app.deploymentTimeout: %+v", w)
	}
	e.clock.Step(2 * time.Minute)
	e.exec.SetMode("/registry", marathonsim.Healthy)
	if _, err := e.reconcile(); err != nil {
		t.Fatal(err)
	}
	w := e.writes()
	if len(w) != 1 || w[0].Method != "PUT" || w[0].Query != "force=true" {
		t.Fatalf("want one forced PUT, got %+v", w)
	}
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}

	// A 409 answered to the write itself is waited on too.
	e.setSpec(func(s *v1alpha1.Spec) { s.App.Image = "registry:3.0.1" })
	e.sim.SetFault(marathonsim.Fault{Status: 409, Methods: "PUT", Remaining: 1,
		Body: `{"message":"App is locked by one or more deployments.","deployments":[{"id":"d-other"}]}`})
	res, err = e.reconcile()
	if err != nil || res.RequeueAfter == 0 || !strings.Contains(e.app().LastError, "d-other") {
		t.Fatalf("409: %+v %v %+v", res, err, e.app())
	}
	if err := e.settle(); err != nil {
		t.Fatal(err)
	}
}

func TestAppStuckDeploymentIsReported(t *testing.T) {
	e := newAppEnv(t, nil)
	e.exec.SetMode("/registry", marathonsim.Stuck)
	e.exec.place(e.ca.issue(e.store, 5))
	e.placeConfig()
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("create: %+v %v", res, err)
	}
	for range 3 {
		if res, err := e.reconcile(); err != nil || res.RequeueAfter == 0 {
			t.Fatalf("while deploying: %+v %v", res, err)
		}
	}
	e.clock.Step(11 * time.Minute)
	_, err = e.reconcile()
	if err == nil || !strings.Contains(err.Error(), "has not finished") {
		t.Fatalf("want a stuck-deployment error, got %v", err)
	}
	if w := e.writes(); len(w) != 1 {
		t.Errorf("a stuck deployment caused writes: %+v", w)
	}
	if e.outOfSync() != 1 {
		t.Error("stuck app not out of sync")
	}
}
