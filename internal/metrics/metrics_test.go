package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SetOutOfSync keeps the series it made; a target forgotten and seen
// again must get a series that is exported, not the deleted one.
func TestOutOfSyncAfterForget(t *testing.T) {
	m := New(BuildInfo{})
	m.SetOutOfSync("trust", "198.18.0.11", true)
	m.SetOutOfSync("conntrack", "198.18.0.11", false)
	m.SetOutOfSync("trust", "198.18.0.12", true)
	if n := testutil.CollectAndCount(m.OutOfSync); n != 3 {
		t.Fatalf("%d out_of_sync series, want 3", n)
	}
	m.ForgetTarget("198.18.0.11")
	if n := testutil.CollectAndCount(m.OutOfSync); n != 1 {
		t.Fatalf("after ForgetTarget: %d out_of_sync series, want 1", n)
	}
	m.SetOutOfSync("trust", "198.18.0.11", true)
	if n := testutil.CollectAndCount(m.OutOfSync); n != 2 {
		t.Fatalf("the node back: %d out_of_sync series, want 2", n)
	}
	if v := testutil.ToFloat64(m.OutOfSync.WithLabelValues("trust", "198.18.0.11")); v != 1 {
		t.Errorf("out_of_sync of the node back = %v, want 1", v)
	}
}

// Reconciled counts by result and stamps the last success only on one.
func TestReconciled(t *testing.T) {
	m := New(BuildInfo{})
	end := time.Unix(1_900_000_000, 0)
	m.Reconciled("trust", ResultSuccess, time.Millisecond, end)
	m.Reconciled("trust", ResultRequeue, time.Millisecond, end.Add(time.Second))
	m.Reconciled("trust", ResultError, time.Millisecond, end.Add(time.Hour))
	for _, res := range []string{ResultSuccess, ResultRequeue, ResultError} {
		if v := testutil.ToFloat64(m.ReconcileTotal.WithLabelValues("trust", res)); v != 1 {
			t.Errorf("reconcile_total{result=%s} = %v, want 1", res, v)
		}
	}
	if v := testutil.ToFloat64(m.LastSuccess.WithLabelValues("trust")); v != float64(end.Unix()+1) {
		t.Errorf("last_success = %v, want %d (the requeue; the error is no success)", v, end.Unix()+1)
	}
	m.Reconciled("not-a-reconciler", ResultSuccess, time.Millisecond, end)
	if v := testutil.ToFloat64(m.ReconcileTotal.WithLabelValues("not-a-reconciler", ResultSuccess)); v != 1 {
		t.Errorf("an unknown reconciler's reconcile_total = %v, want 1", v)
	}
}
