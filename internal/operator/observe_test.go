package operator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// TestManagerReportsReachMetricsAndState runs the operator's manager and
// checks what its observer leaves: the reconcile counters and each
// reconciler's record in the state store (status page, certificate gates).
func TestManagerReportsReachMetricsAndState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := &v1alpha1.Spec{Reconcile: v1alpha1.ReconcileSpec{Interval: v1alpha1.D(time.Hour), Timeout: v1alpha1.D(time.Minute)}}
		store, mt := state.New(), metrics.New(metrics.BuildInfo{Version: "test"})
		mgr := newManager(Options{Log: logr.Discard(), Grace: 5 * time.Second}, func() *v1alpha1.Spec { return spec }, store, mt)

		var mu sync.Mutex
		calls := map[string]int{}
		scripted := func(name string, fn func(n int) (manager.Result, error)) manager.Func {
			return func(context.Context, string) (manager.Result, error) {
				mu.Lock()
				n := calls[name]
				calls[name]++
				mu.Unlock()
				return fn(n)
			}
		}
		// trust fails four times, then works; app polls once, then works;
		// certificates meets an error retrying cannot fix; conntrack is off.
		mgr.Add(manager.Options{Name: reconciler.Trust, Resync: func() []string { return []string{"a"} },
			Reconciler: scripted(reconciler.Trust, func(n int) (manager.Result, error) {
				if n < 4 {
					return manager.Result{}, errors.New("node unreachable")
				}
				return manager.Result{}, nil
			})})
		mgr.Add(manager.Options{Name: reconciler.App, Resync: func() []string { return []string{"/registry"} },
			Reconciler: scripted(reconciler.App, func(n int) (manager.Result, error) {
				if n == 0 {
					return manager.Result{RequeueAfter: 10 * time.Second}, nil
				}
				return manager.Result{}, nil
			})})
		mgr.Add(manager.Options{Name: reconciler.Certificates, Resync: func() []string { return []string{"tls"} },
			Reconciler: scripted(reconciler.Certificates, func(int) (manager.Result, error) {
				return manager.Result{}, manager.TerminalError(errors.New("422 invalid"))
			})})
		mgr.Add(manager.Options{Name: reconciler.Conntrack, Enabled: func() bool { return false },
			Resync: func() []string { return []string{"b"} }, Reconciler: scripted(reconciler.Conntrack, nil)})

		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		go mgr.Run(ctx)
		time.Sleep(time.Minute)
		cancel()
		synctest.Wait()

		for _, c := range []struct {
			name, result string
			want         float64
		}{
			{reconciler.Trust, metrics.ResultError, 4}, {reconciler.Trust, metrics.ResultSuccess, 1},
			{reconciler.App, metrics.ResultRequeue, 1}, {reconciler.App, metrics.ResultSuccess, 1},
			{reconciler.Certificates, metrics.ResultError, 1}, {reconciler.Certificates, metrics.ResultSuccess, 0},
			{reconciler.Conntrack, metrics.ResultSuccess, 0},
		} {
			if got := testutil.ToFloat64(mt.ReconcileTotal.WithLabelValues(c.name, c.result)); got != c.want {
				t.Errorf("reconcile_total{%s,%s} = %v, want %v", c.name, c.result, got, c.want)
			}
		}
		if got := testutil.ToFloat64(mt.LastSuccess.WithLabelValues(reconciler.Trust)); got < float64(start.Unix()) {
			t.Errorf("trust last success = %v, want a time after the start %d", got, start.Unix())
		}
		if got := testutil.ToFloat64(mt.LastSuccess.WithLabelValues(reconciler.Certificates)); got != 0 {
			t.Errorf("certificates never succeeded, last success = %v", got)
		}

		rs := map[string]state.ReconcilerStatus{}
		for _, r := range store.Reconcilers() {
			rs[r.Name] = r
		}
		if r := rs[reconciler.Trust]; !r.Enabled || r.LastResult != metrics.ResultSuccess || r.LastError != "" ||
			r.LastRun.Before(start) || r.LastSuccess.Before(r.LastRun) {
			t.Errorf("trust record %+v: want enabled, success, no error, run and success times set", r)
		}
		if r := rs[reconciler.App]; r.LastResult != metrics.ResultSuccess || r.LastRun.Sub(start) != 10*time.Second {
			t.Errorf("app record %+v: want success from the poll 10s after the start", r)
		}
		if r := rs[reconciler.Certificates]; !r.Enabled || r.LastResult != metrics.ResultError ||
			!strings.Contains(r.LastError, "422 invalid") || !r.LastSuccess.IsZero() || r.LastRun.IsZero() {
			t.Errorf("certificates record %+v: want the error, a run time and no success", r)
		}
		if r, ok := rs[reconciler.Conntrack]; !ok || r.Enabled || r.LastResult != "" || calls[reconciler.Conntrack] != 0 {
			t.Errorf("conntrack record %+v (present %v, %d calls): want disabled and never run", r, ok, calls[reconciler.Conntrack])
		}
	})
}
