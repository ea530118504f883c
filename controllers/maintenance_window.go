package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/gcwindow"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/state"
)

// errReportMode is what the report-mode store answers a save with: a
// window is never recorded, so it never opens.
var errReportMode = errors.New("not saved: reconcile.mode is report")

// reportStore is the maintenance reconciler's store in report mode: loads
// read through, saves are refused. Refusing (rather than recording, as the
// pullsecret reconciler's store does) is what keeps a window from ever
// opening: every step is taken only after its record is saved.
type reportStore struct{ pki.Store }

func (reportStore) Save(context.Context, pki.Files) error { return errReportMode }

// store is the one place report mode is decided for this reconciler.
func (r *Maintenance) store(spec *v1alpha1.Spec) pki.Store {
	st := r.opts.PKIStore(spec)
	if spec.Report() {
		return reportStore{st}
	}
	return st
}

// loadWindow reads gc-window.json: nil when no window is recorded.
func loadWindow(ctx context.Context, st pki.Store) (*gcwindow.Window, error) {
	f, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the garbage-collection window record from %s: %w", st.Where(), err)
	}
	b, ok := f[pki.FileGCWindow]
	if !ok {
		return nil, nil
	}
	w, err := gcwindow.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w; writes were restored: move the file away once the registry "+
			"accepts uploads", pki.FileGCWindow, st.Where(), err)
	}
	return &w, nil
}

// saveWindow records w, or removes the record when w is nil.
func saveWindow(ctx context.Context, st pki.Store, w *gcwindow.Window) error {
	f := pki.Files{}
	if w != nil {
		b, err := gcwindow.Encode(*w)
		if err != nil {
			return err
		}
		f[pki.FileGCWindow] = b
	}
	if err := st.Save(ctx, f); err != nil {
		return fmt.Errorf("save the garbage-collection window record to %s: %w", st.Where(), err)
	}
	return nil
}

// sameWindow reports whether two records say the same.
func sameWindow(a, b *gcwindow.Window) bool {
	if a == nil || b == nil {
		return a == b
	}
	ea, err1 := gcwindow.Encode(*a)
	eb, err2 := gcwindow.Encode(*b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// act carries out a decision: the record first, then the step.
func (r *Maintenance) act(ctx context.Context, spec *v1alpha1.Spec, st pki.Store, w *gcwindow.Window,
	a gcwindow.Action, agent string) (manager.Result, error) {
	switch a.Kind {
	case gcwindow.None:
		return result(a), nil
	case gcwindow.Finish:
		if err := saveWindow(ctx, st, nil); err != nil {
			return manager.Result{}, err
		}
		r.finish(*a.Window)
		return result(a), nil
	}
	if !sameWindow(a.Window, w) {
		if err := saveWindow(ctx, st, a.Window); err != nil {
			if errors.Is(err, errReportMode) {
				return result(gcwindow.Action{RequeueAfter: a.RequeueAfter}), nil
			}
			return manager.Result{}, err
		}
	}
	switch a.Kind {
	case gcwindow.Open:
		r.mu.Lock()
		r.ownRunID = a.Window.RunID
		r.mu.Unlock()
		r.Log.Info("garbage-collection window opened", "run", a.Window.RunID, "reason", a.Window.Reason,
			"deadline", a.Window.Deadline)
		r.requestReadOnly(*a.Window)
	case gcwindow.DeployReadOnly:
		r.requestReadOnly(*a.Window)
	case gcwindow.Collect:
		r.startGC(spec, agent, *a.Window)
	case gcwindow.Close:
		r.stopGC()
		r.requestWritable()
	}
	return result(a), nil
}

func (r *Maintenance) requestReadOnly(w gcwindow.Window) {
	r.Store.SetRegistryMaintenance(state.RegistryMaintenance{ReadOnly: true, Since: w.OpenedAt,
		Reason: "garbage collection " + w.RunID})
}

func (r *Maintenance) requestWritable() {
	if r.Store.RegistryMaintenance().ReadOnly {
		r.Store.SetRegistryMaintenance(state.RegistryMaintenance{})
	}
}

// finish counts a closed run; the registry accepts uploads again.
func (r *Maintenance) finish(w gcwindow.Window) {
	now := r.Clock.Now()
	r.mu.Lock()
	freed, gcErr := r.gc.freed, r.gc.err
	if w.RunID == r.ownRunID || r.ownRunID == "" {
		r.lastRun = w.OpenedAt
	}
	r.ownRunID, r.gc = "", gcRun{}
	r.last = lastGC{at: now, result: w.Result, freed: freed}
	if gcErr != nil {
		r.last.err = gcErr.Error()
	}
	r.mu.Unlock()
	r.Metrics.GCRuns.WithLabelValues(string(w.Result)).Inc()
	r.Metrics.GCDuration.Set(now.Sub(w.OpenedAt).Seconds())
	if w.Result == gcwindow.ResultSuccess {
		r.Metrics.GCLastSuccess.Set(float64(now.Unix()))
		r.Metrics.GCFreedBytes.Set(float64(freed))
	}
	r.Log.Info("garbage-collection window closed", "run", w.RunID, "result", string(w.Result), "reason", w.CloseReason,
		"freedBytes", freed, "readOnlyFor", now.Sub(w.OpenedAt).String())
}

// Shutdown runs when this instance stops leading (SIGTERM or a lost
// leadership): it ends a running garbage-collect, marks a window this
// process opened as closing (with a fresh, short context: the passes'
// context is gone) and asks for writes back. Whoever leads next renders
// a writable config from the start and closes the recorded window first.
func (r *Maintenance) Shutdown() {
	r.stopGC()
	r.mu.Lock()
	own := r.ownRunID
	r.ownRunID = ""
	r.mu.Unlock()
	r.requestWritable()
	spec := r.Spec()
	if own == "" || spec == nil || !spec.MaintenanceEnabled() || spec.Report() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), gcCloseTimeout)
	defer cancel()
	st := r.store(spec)
	w, err := loadWindow(ctx, st)
	if err != nil || w == nil || w.RunID != own || w.Phase == gcwindow.PhaseClosing {
		return
	}
	w.Phase, w.Result, w.CloseReason = gcwindow.PhaseClosing, gcwindow.ResultAborted, "the operator stopped or lost leadership"
	if err := saveWindow(ctx, st, w); err != nil {
		r.Log.Error(err, "could not record the garbage-collection window as closing; the next operator closes it",
			"run", own)
	}
}

// blockers are what keeps a run from starting, and the data agent.
func (r *Maintenance) blockers(spec *v1alpha1.Spec) (gcwindow.Blockers, string) {
	pk := r.Store.PKI()
	app := r.Store.AppPlacement(spec.App.ID)
	b := gcwindow.Blockers{
		CARotation:         pk.Rotation != "",
		CertificateRestart: app.Observed && pk.Generation > app.RestartedForGeneration,
		Instances:          max(len(app.Hosts), v1alpha1.InstancesOr(spec.App.Instances, 1)),
	}
	if len(app.Hosts) == 0 {
		b.Instances = 0
	}
	if len(app.Hosts) == 1 {
		b.DataAgent = r.nodeFor(app.Hosts[0])
	}
	return b, b.DataAgent
}

// nodeFor is the address of the known node Marathon calls host (by its
// address or the hostname Mesos reported), or "".
func (r *Maintenance) nodeFor(host string) string {
	for _, n := range r.Store.Nodes() {
		if hostOnly(n.Address) == host || (n.Hostname != "" && n.Hostname == host) {
			return n.Address
		}
	}
	return ""
}
