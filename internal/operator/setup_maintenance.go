package operator

import (
	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/controllers"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// setupMaintenance registers the maintenance reconciler. Its window is a
// config change: a new read-only request goes to placement (the config
// file on the registry's agents) and to the app (which restarts the
// registry once the file is there).
func setupMaintenance(m *manager.Manager, d Deps, rd controllers.Deps, w *wiring, exec *nodes.Executor,
	store func(*v1alpha1.Spec) pki.Store) {
	// garbage-collect gets connections of its own, bounded by its timeout.
	gcExec := nodes.NewExecutor(d.Metrics, d.Clock, d.Log.WithName("ssh-gc"))
	w.closers = append(w.closers, gcExec.Close)
	mt := controllers.NewMaintenance(rd, controllers.MaintenanceOptions{Exec: exec, GCExec: gcExec, PKIStore: store,
		Wake: func() { m.Enqueue(reconciler.Maintenance, controllers.MaintenanceKey) }})
	m.Add(manager.Options{Name: reconciler.Maintenance, Reconciler: mt,
		Enabled: when(d.Spec, (*v1alpha1.Spec).MaintenanceEnabled),
		Resync:  func() []string { return []string{controllers.MaintenanceKey} }})
	// SIGTERM or a lost leadership: end garbage-collect and record the
	// window as closing with a fresh context.
	w.stoppers = append(w.stoppers, mt.Shutdown)
	d.Store.OnChange(state.TopicMaintenance, func() {
		for _, addr := range d.Store.Addresses() {
			m.Enqueue(reconciler.Placement, addr)
		}
		for _, k := range controllers.AppKeys(d.Spec()) {
			m.Enqueue(reconciler.App, k)
		}
	})
	// Placement and the app report progress: a window waiting on them moves.
	wake := func() {
		if d.Store.Maintenance().WindowOpen {
			m.Enqueue(reconciler.Maintenance, controllers.MaintenanceKey)
		}
	}
	d.Store.OnChange(state.TopicApp, wake)
	d.Store.OnChange(state.TopicRegistryConfig, wake)
}
