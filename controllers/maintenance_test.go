package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/gcwindow"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/registrygc"
)

// openAndCollect takes a window from due to garbage-collect started.
func (e *gcEnv) openAndCollect() {
	e.t.Helper()
	e.reconcile() // first sight of the schedule
	e.clock.SetTime(gcDue)
	e.reconcile()
	if e.phase() != gcwindow.PhaseOpening || !e.store.RegistryMaintenance().ReadOnly {
		e.t.Fatalf("due: want the window recorded (opening) and read-only requested, got %q %+v", e.phase(),
			e.store.RegistryMaintenance())
	}
	e.reconcile()
	if e.phase() != gcwindow.PhaseWaiting {
		e.t.Fatalf("read-only requested: want waiting, got %q", e.phase())
	}
	// Placement and the app have not deployed it yet: uploads still work,
	// so garbage-collect must not start.
	e.reconcile()
	if e.phase() != gcwindow.PhaseWaiting || e.accepted.Load() == 0 {
		e.t.Fatalf("registry still writable: want waiting after an accepted probe, got %q (accepted %d)",
			e.phase(), e.accepted.Load())
	}
	e.deploy()
	e.reconcile()
	if e.phase() != gcwindow.PhaseCollecting || e.refused.Load() == 0 {
		e.t.Fatalf("registry read-only: want collecting, got %q (refused %d)", e.phase(), e.refused.Load())
	}
}

// closeAndFinish restores writes and ends the window.
func (e *gcEnv) closeAndFinish(result string) {
	e.t.Helper()
	e.reconcile()
	if w := e.window(); w == nil || w.Phase != gcwindow.PhaseClosing || string(w.Result) != result {
		e.t.Fatalf("want the window closing with %s, got %+v", result, w)
	}
	if e.store.RegistryMaintenance().ReadOnly {
		e.t.Fatal("closing: writes must be requested back")
	}
	if testutil.ToFloat64(e.metrics.ReadOnly) != 1 {
		e.t.Error("registry_read_only must be 1 until writes are served again")
	}
	e.deploy()
	e.reconcile()
	if e.window() != nil {
		e.t.Fatalf("writes restored: the record must be gone, got %+v", e.window())
	}
	if e.runs(result) != 1 || testutil.ToFloat64(e.metrics.ReadOnly) != 0 {
		e.t.Errorf("gc_runs_total{%s} = %v, read_only = %v", result, e.runs(result), testutil.ToFloat64(e.metrics.ReadOnly))
	}
	if e.readOnly.Load() {
		e.t.Error("the registry must accept uploads after the window")
	}
}

func TestMaintenanceWindowCollects(t *testing.T) {
	e := newGCEnv(t, nil)
	e.openAndCollect()
	e.waitGC()
	if !e.gcWhileReadOnly.Load() {
		t.Error("garbage-collect ran while the registry accepted uploads")
	}
	n := e.gcNode()
	if len(n.runs) != 1 {
		t.Fatalf("want one garbage-collect, got %d", len(n.runs))
	}
	want, _, _ := gcCommand(e.spec).Script()
	if n.runs[0] != want {
		t.Errorf("ran %q, want the docker runner's script", n.runs[0])
	}
	e.closeAndFinish(string(gcwindow.ResultSuccess))
	if got := testutil.ToFloat64(e.metrics.GCFreedBytes); got != 100 {
		t.Errorf("gc_freed_bytes = %v, want 100", got)
	}
	if testutil.ToFloat64(e.metrics.GCLastSuccess) == 0 {
		t.Error("gc_last_success_timestamp_seconds not set")
	}
	if used := testutil.ToFloat64(e.metrics.StorageBytes.WithLabelValues("used")); used != 600 {
		t.Errorf("registry_storage_bytes{used} = %v, want 600", used)
	}
	m := e.store.Maintenance()
	if m.LastResult != "success" || m.LastFreedBytes != 100 || m.WindowOpen || !m.Next.Equal(gcDue.AddDate(0, 0, 7)) {
		t.Errorf("status after the run: %+v", m)
	}
	// Nothing more until next week.
	e.clock.Step(time.Hour)
	e.reconcile()
	if e.window() != nil || len(n.runs) != 1 {
		t.Error("a second window opened for the same run")
	}
}

func TestMaintenanceGCFailureRestoresWrites(t *testing.T) {
	e := newGCEnv(t, nil)
	e.gcNode().run = func(string, []string) ([]byte, error) {
		return []byte("panic: storage driver"), errors.New("command exited 2")
	}
	e.openAndCollect()
	e.waitGC()
	e.closeAndFinish(string(gcwindow.ResultFailed))
	if m := e.store.Maintenance(); !strings.Contains(m.LastError, "command exited 2") {
		t.Errorf("the failure must reach the status: %+v", m)
	}
}

func TestMaintenanceGCTimeoutRestoresWrites(t *testing.T) {
	e := newGCEnv(t, nil)
	release := blockingRun(e.gcNode())
	defer release()
	e.openAndCollect()
	e.clock.Step(e.spec.Maintenance.GarbageCollection.Timeout.Duration)
	e.closeAndFinish(string(gcwindow.ResultTimeout))
}

func TestMaintenanceMaxReadOnlyRestoresWrites(t *testing.T) {
	e := newGCEnv(t, nil)
	e.reconcile()
	e.clock.SetTime(gcDue)
	e.reconcile()
	e.reconcile()
	// The registry never turns read-only (say its restart hangs).
	e.clock.Step(e.spec.Maintenance.GarbageCollection.MaxReadOnly.Duration)
	e.reconcile()
	w := e.window()
	if w == nil || w.Result != gcwindow.ResultAborted || !strings.Contains(w.CloseReason, "maxReadOnly") {
		t.Fatalf("want the window closing after maxReadOnly, got %+v", w)
	}
	if len(e.gcNode().runs) != 0 {
		t.Error("garbage-collect ran though the registry never refused uploads")
	}
	e.deploy()
	e.reconcile()
	if e.window() != nil || e.runs("aborted") != 1 {
		t.Errorf("the window must end aborted, got %+v", e.window())
	}
}

func TestMaintenanceClosesWindowFoundAtStart(t *testing.T) {
	e := newGCEnv(t, nil)
	// A previous operator died collecting, with the registry read-only.
	old := gcwindow.Window{RunID: "gc-20261206T030000Z", Phase: gcwindow.PhaseCollecting, Reason: "scheduled",
		OpenedAt: gcDue, Deadline: gcDue.Add(30 * time.Minute), CollectingSince: gcDue.Add(time.Minute)}
	b, err := gcwindow.Encode(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.NewDirStore(e.pkiDir).Save(context.Background(), pki.Files{pki.FileGCWindow: b}); err != nil {
		t.Fatal(err)
	}
	e.readOnly.Store(true)
	e.clock.SetTime(gcDue.Add(5 * time.Minute))
	e.reconcile()
	w := e.window()
	if w == nil || w.Phase != gcwindow.PhaseClosing || !strings.Contains(w.CloseReason, "previous operator") {
		t.Fatalf("a window found at start must be closed first, got %+v", w)
	}
	if len(e.gcNode().runs) != 0 {
		t.Error("garbage-collect must not run for a window left by another operator")
	}
	e.reconcile() // the registry still refuses uploads: wait
	if e.window() == nil {
		t.Fatal("the record went before writes were served again")
	}
	e.deploy()
	e.reconcile()
	if e.window() != nil || e.runs("aborted") != 1 {
		t.Errorf("want the record gone and the run counted aborted, got %+v", e.window())
	}
}

func TestMaintenanceRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		edit   func(e *gcEnv)
		status string
	}{
		"CA rotation": {func(e *gcEnv) {
			p := e.store.PKI()
			p.Rotation = "distributing"
			e.store.SetPKI(p)
		}, "a CA rotation is under way"},
		"certificate restart": {func(e *gcEnv) {
			p := e.store.PKI()
			p.Generation++
			e.store.SetPKI(p)
		}, "a certificate restart is under way"},
		"two instances": {func(e *gcEnv) {
			a := e.store.AppPlacement(e.spec.App.ID)
			e.store.SetApp(stateApp(e, append(a.Hosts, "198.18.0.12")))
		}, "2 registry instances run"},
		"unknown agent": {func(e *gcEnv) { e.store.SetApp(stateApp(e, []string{"198.18.0.99"})) },
			"the agent holding the registry's data is unknown"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newGCEnv(t, nil)
			e.reconcile()
			tc.edit(e)
			e.clock.SetTime(gcDue)
			e.reconcile()
			if e.window() != nil || e.store.RegistryMaintenance().ReadOnly {
				t.Fatal("a refused run must record nothing and request nothing")
			}
			if s := e.store.Maintenance().Status; !strings.Contains(s, tc.status) {
				t.Errorf("status %q does not say %q", s, tc.status)
			}
		})
	}
}

func TestMaintenanceReportModeStartsNothing(t *testing.T) {
	e := newGCEnv(t, func(s *v1alpha1.Spec) { s.Reconcile.Mode = v1alpha1.ModeReport })
	e.reconcile()
	e.clock.SetTime(gcDue)
	for range 3 {
		e.reconcile()
	}
	if e.window() != nil || e.store.RegistryMaintenance().ReadOnly || len(e.gcNode().runs) != 0 {
		t.Fatal("report mode opened a window")
	}
	m := e.store.Maintenance()
	if len(m.Pending) != 1 || !strings.Contains(m.Pending[0], "garbage collection at 2026-12-06T03:00:00Z on 198.18.0.11") ||
		!strings.Contains(m.Pending[0], "docker run --rm registry:2.8.3 garbage-collect") {
		t.Errorf("report mode must show the run it would make: %q", m.Pending)
	}
}

func TestMaintenanceShutdownRecordsClosing(t *testing.T) {
	e := newGCEnv(t, nil)
	release := blockingRun(e.gcNode())
	defer release()
	e.openAndCollect()
	e.rec.Shutdown()
	w := e.window()
	if w == nil || w.Phase != gcwindow.PhaseClosing || w.Result != gcwindow.ResultAborted {
		t.Fatalf("shutdown must record the window as closing, got %+v", w)
	}
	if e.store.RegistryMaintenance().ReadOnly {
		t.Error("shutdown must ask for writes back")
	}
}

func TestMaintenanceBinaryRunnerConfig(t *testing.T) {
	e := newGCEnv(t, func(s *v1alpha1.Spec) {
		s.Maintenance.GarbageCollection.Runner = v1alpha1.RunnerBinary
		s.Maintenance.GarbageCollection.BinaryPath = v1alpha1.DefaultGCBinaryPath
	})
	p := e.store.PKI()
	p.ServerKey = []byte("server key")
	e.store.SetPKI(p)
	var args []string
	e.gcNode().run = func(_ string, a []string) ([]byte, error) {
		args = a
		return []byte(gcOut), nil
	}
	e.openAndCollect()
	e.waitGC()
	cfgPath := e.spec.App.CertsHostPath + "/" + gcConfigFile
	if len(args) == 0 || args[0] != v1alpha1.DefaultGCBinaryPath || args[len(args)-1] != cfgPath {
		t.Fatalf("binary runner args %q", args)
	}
	cfg := string(e.gcNode().files[cfgPath])
	if !strings.Contains(cfg, "rootdirectory: "+e.spec.App.DataHostPath) || e.gcNode().modes[cfgPath] != 0o600 {
		t.Errorf("the binary runner's config must name the data where the agent has it (0600):\n%s", cfg)
	}
	if _, _, err := (registrygc.Command{Runner: registrygc.RunnerBinary, BinaryPath: "/x;y"}).Script(); err == nil {
		t.Error("an unsafe binary path must be refused")
	}
}
