package operator

import (
	"time"

	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/state"
)

// newManager builds the manager for the spec in force: the resync interval
// and the per-reconcile timeout are read from it each time, so a reload
// applies them from the next resync and the next reconcile.
func newManager(opts Options, spec func() *v1alpha1.Spec, store *state.Store, m *metrics.Metrics) *manager.Manager {
	return manager.New(manager.Config{
		Log: opts.Log.WithName("manager"), Clock: clock.RealClock{},
		ResyncInterval:   func() time.Duration { return spec().Reconcile.Interval.Duration },
		ReconcileTimeout: func() time.Duration { return spec().Reconcile.Timeout.Duration },
		Observers:        []manager.Observer{reconcileObserver{store: store, metrics: m}},
		GracePeriod:      opts.Grace,
		OnceAttempts:     onceAttempts(opts),
	})
}

// onceAttempts: a plan reports a failing check at once; a once-pass
// retries it a little, as transient SSH or Marathon errors are common.
func onceAttempts(opts Options) int {
	if opts.Plan {
		return 1
	}
	return 3
}

// when asks pred of the spec in force each time the manager asks whether a
// reconciler is enabled.
func when(spec func() *v1alpha1.Spec, pred func(*v1alpha1.Spec) bool) func() bool {
	return func() bool { return pred(spec()) }
}

// keysOf lists a reconciler's resync keys from the spec in force.
func keysOf(spec func() *v1alpha1.Spec, keys func(*v1alpha1.Spec) []string) func() []string {
	return func() []string { return keys(spec()) }
}
