package operator

import (
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/state"
)

// reconcileObserver turns the manager's reports into the reconcile metrics
// and each reconciler's record in the state store, which the status page
// shows and the certificates reconciler's gates read (LastRun).
type reconcileObserver struct {
	store   *state.Store
	metrics *metrics.Metrics
}

var _ manager.Observer = reconcileObserver{}

func (o reconcileObserver) Enabled(name string, on bool) {
	o.store.UpdateReconciler(name, func(r *state.ReconcilerStatus) { r.Enabled = on })
}

func (o reconcileObserver) Finished(rep manager.Report) {
	name, result := rep.Reconciler, resultLabel(rep)
	o.metrics.Reconciled(name, result, rep.Duration, rep.End())
	o.store.UpdateReconciler(name, func(r *state.ReconcilerStatus) {
		r.Enabled, r.LastResult, r.LastRun = true, result, rep.Start
		r.LastError = ""
		if rep.Err != nil {
			r.LastError = rep.Err.Error()
		} else {
			r.LastSuccess = rep.End()
		}
	})
}

// resultLabel names a reconcile's outcome as the metrics and the status
// page do: an error, a poll (RequeueAfter), or done.
func resultLabel(rep manager.Report) string {
	switch {
	case rep.Err != nil:
		return metrics.ResultError
	case rep.Result.RequeueAfter > 0:
		return metrics.ResultRequeue
	}
	return metrics.ResultSuccess
}
