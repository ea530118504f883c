package controllers

import (
	"context"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// An agent matched by the hostname it reports to Mesos, but not by its
// address, does not get the key: any agent can report any hostname.
func TestPlacementNotOnAHostnameClaim(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.App.Constraints = [][]string{{"hostname", "LIKE", "registry-1"}}
	})
	e.store.SetFleet([]state.Node{{Address: nodeA, Hostname: "registry-1"}, {Address: nodeB, Hostname: "registry-2"}})
	publishBundle(e.store, "CA1")
	r := NewPlacement(e.deps, e.opts)
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	key := v1alpha1.DefaultCertsHostPath + "/tls.key"
	if _, ok := e.node(nodeA).files[key]; ok {
		t.Fatal("the key went to an agent matched only by the hostname it reports")
	}
	c := e.concern(t, nodeA, reconciler.Placement)
	if c.InSync || !strings.Contains(c.Detail, "identity not certain") || !strings.Contains(c.Detail, "registry-1") {
		t.Errorf("concern %+v: want pending with an identity detail naming the hostname", c)
	}
	// The address named in the constraint too: the agent is certain.
	e.spec.App.Constraints = [][]string{{"hostname", "LIKE", `registry-1|198\.18\.0\.11`}}
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if string(e.node(nodeA).files[key]) != "key-CA1" {
		t.Fatal("the key was not placed once the address matched")
	}
	if c := e.concern(t, nodeA, reconciler.Placement); !c.InSync {
		t.Errorf("concern %+v: want in sync", c)
	}
	// A hostname excluded by UNLIKE still excludes, whatever the address.
	e.spec.App.Constraints = [][]string{{"hostname", "UNLIKE", "registry-1"}}
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.node(nodeA).files[key]; ok {
		t.Error("the key stayed on an agent UNLIKE excludes by its hostname")
	}
}

// An agent whose host key was accepted on first use in this connection
// does not get the key; the pass is pending and looks again soon, and the
// next connection (the key now on record) places it. Report mode sees the
// same through its recording connection.
func TestPlacementNotOnFirstUse(t *testing.T) {
	for _, report := range []bool{false, true} {
		e := newNodeEnv(t, func(s *v1alpha1.Spec) {
			if report {
				s.Reconcile.Mode = v1alpha1.ModeReport
			}
		})
		publishBundle(e.store, "CA1")
		r := NewPlacement(e.deps, e.opts)
		ctx := context.Background()
		n := e.node(nodeA)
		n.acceptedNew = true
		res, err := r.Reconcile(ctx, nodeA)
		if err != nil {
			t.Fatal(err)
		}
		key := v1alpha1.DefaultCertsHostPath + "/tls.key"
		if _, ok := n.files[key]; ok || n.writes != 0 {
			t.Fatalf("report=%v: the key went to an agent whose host key was accepted on first use (%d writes)", report, n.writes)
		}
		c := e.concern(t, nodeA, reconciler.Placement)
		if c.InSync || !strings.Contains(c.Detail, "identity not certain") || !strings.Contains(c.Detail, "first use") ||
			len(c.Changes) != 0 {
			t.Errorf("report=%v: concern %+v: want pending, an identity detail, no change listed", report, c)
		}
		if res.RequeueAfter <= 0 {
			t.Errorf("report=%v: no requeue: the next pass would wait for the next resync", report)
		}
		n.acceptedNew = false // the next connection checks the recorded key
		if _, err := r.Reconcile(ctx, nodeA); err != nil {
			t.Fatal(err)
		}
		if report {
			if c := e.concern(t, nodeA, reconciler.Placement); c.InSync || len(c.Changes) == 0 {
				t.Errorf("report mode: concern %+v: want the placement listed as pending", c)
			}
			continue
		}
		if string(n.files[key]) != "key-CA1" || !e.concern(t, nodeA, reconciler.Placement).InSync {
			t.Error("the key was not placed on the next connection")
		}
	}
}
