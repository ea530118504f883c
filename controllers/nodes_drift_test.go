package controllers

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// Drift found while in report mode is still drift when enforce repairs it
// later; a spec change made meanwhile is a rollout.
func TestDriftReportedThenRepaired(t *testing.T) {
	e := newNodeEnv(t, nil)
	publishBundle(e.store, "CA1")
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	ca := "/etc/docker/certs.d/registry.test:5000/ca.crt"
	drift := func() float64 {
		return testutil.ToFloat64(e.metrics.DriftCorrections.WithLabelValues(reconciler.Trust))
	}
	pass := func(mode string) {
		t.Helper()
		e.spec.Reconcile.Mode = mode
		if _, err := r.Reconcile(ctx, nodeA); err != nil {
			t.Fatal(err)
		}
	}

	pass(v1alpha1.ModeEnforce) // first rollout: not drift
	n := e.node(nodeA)
	delete(n.files, ca)
	pass(v1alpha1.ModeReport)
	pass(v1alpha1.ModeReport)
	if _, ok := n.files[ca]; ok || drift() != 0 {
		t.Fatalf("report mode wrote ca.crt or counted drift (%v)", drift())
	}
	pass(v1alpha1.ModeEnforce)
	if string(n.files[ca]) != "CA1" || drift() != 1 {
		t.Fatalf("enforce after report: ca.crt %q, drift corrections %v; want CA1 and 1", n.files[ca], drift())
	}

	// Drift reported, then a new bundle: the write is a rollout.
	n.files[ca] = []byte("tampered")
	pass(v1alpha1.ModeReport)
	publishBundle(e.store, "CA2")
	pass(v1alpha1.ModeEnforce)
	if string(n.files[ca]) != "CA2" || drift() != 1 {
		t.Fatalf("rollout after reported drift: ca.crt %q, drift corrections %v; want CA2 and 1", n.files[ca], drift())
	}
}
