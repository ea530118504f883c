package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// The recording client reads Marathon and sends it no write.
func TestMarathonRecordingSendsNoWrite(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.sim.ResetWrites()
	c, err := marathon.New(marathon.OptionsFromSpec(e.spec.Load().Marathon, e.metrics))
	if err != nil {
		t.Fatal(err)
	}
	rec := marathon.Recording(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if a, err := rec.GetApp(ctx, "/registry"); err != nil || a.Definition["id"] != "/registry" {
		t.Fatalf("GetApp through the recorder: %v %v", a, err)
	}
	_, errCreate := rec.CreateApp(ctx, &marathon.App{ID: "/other"})
	_, errUpdate := rec.UpdateApp(ctx, "/registry", map[string]any{"instances": 0}, true)
	_, errRestart := rec.RestartApp(ctx, "/registry", false)
	for i, err := range []error{errCreate, errUpdate, errRestart} {
		if !errors.Is(err, marathon.ErrNotSent) {
			t.Errorf("write %d: %v, want ErrNotSent", i, err)
		}
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("the recorder sent writes: %+v", w)
	}
	want := []string{"create /other", "update /registry (1 field(s), force true)", "restart /registry (force false)"}
	if got := rec.Recorded(); !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
}

// A restart owed for a new certificate is reported, not sent, in report mode.
func TestAppReportModeRecordsRestart(t *testing.T) {
	e := newAppEnv(t, nil)
	e.createHealthy()
	e.setSpec(func(s *v1alpha1.Spec) { s.Reconcile.Mode = v1alpha1.ModeReport })
	e.sim.ResetWrites()
	next := e.ca.issue(e.store, 101)
	e.exec.place(next)
	e.store.SetConcern("198.18.0.11", reconciler.Placement, state.Concern{InSync: true, Hash: e.store.PKI().ServerHash})
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("report pass: %+v %v", res, err)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("report mode wrote: %+v", w)
	}
	if d := e.app().Diff; len(d) != 1 || !strings.HasPrefix(d[0], "restart: serving certificate serial") {
		t.Errorf("diff %q", d)
	}
}
