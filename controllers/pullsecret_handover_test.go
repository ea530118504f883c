package controllers

import (
	"context"
	"fmt"
	"path"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// A rotation never gives an agent a pull password the registry does not
// accept yet: with placement writing the htpasswd files and its
// RegistryPullUsers view as the pullsecret reconciler's gate (as
// internal/operator wires them), agents keep the old generation until the
// htpasswd file on every agent that may run the registry holds the new
// user, whatever order the reconcilers run in; and the view's change that
// completes the handover wakes the pullsecret reconciler.
func TestPullRotationWaitsForEveryRegistryAgent(t *testing.T) {
	e := newAuthEnv(t, nil) // no constraints: both agents may run the registry
	e.opts.HtpasswdCost = bcrypt.MinCost
	publishBundle(e.store, "CA1")
	e.pull = NewPullSecret(e.deps, PullSecretOptions{RegistryAccepts: func(u string) bool {
		return e.store.RegistryPullUsers().Accepts(u)
	}})
	e.creds = NewCredentials(e.deps, e.opts)
	place := NewPlacement(e.deps, e.opts)
	wakes := 0
	e.store.OnChange(state.TopicRegistryUsers, func() {
		if PullHandoverReady(e.store) {
			wakes++
		}
	})
	ctx := context.Background()
	placeOn := func(addrs ...string) {
		t.Helper()
		for _, a := range addrs {
			if _, err := place.Reconcile(ctx, a); err != nil {
				t.Fatalf("placement on %s: %v", a, err)
			}
		}
	}
	// invariant: every generation an agent carries is a user of the
	// htpasswd file on every agent that may run the registry.
	invariant := func(step string) {
		t.Helper()
		for _, carrier := range []string{nodeA, nodeB} {
			g := e.concern(t, carrier, reconciler.Credentials).Hash
			if g == "" {
				continue
			}
			for _, reg := range []string{nodeA, nodeB} {
				users, err := htpasswd.Parse(e.node(reg).files[path.Join(e.spec.App.CertsHostPath, marathon.HtpasswdFile)])
				if err != nil {
					t.Fatalf("%s: htpasswd on %s: %v", step, reg, err)
				}
				if _, ok := users["agents-"+g]; !ok {
					t.Fatalf("%s: %s carries generation %s, which the htpasswd file on %s does not hold", step, carrier, g, reg)
				}
			}
		}
	}

	if p := e.reconcilePull(t); p.Current.Name != "agents-1" {
		t.Fatalf("first generation: %s", p.Current.Name)
	}
	placeOn(nodeA, nodeB)
	e.reconcileCreds(t, nodeA, nodeB)
	invariant("generation 1 everywhere")

	e.clock.Step(2 * time.Hour)
	// Credentials run first: they must not get generation 2 yet.
	if p := e.reconcilePull(t); p.Current.Name != "agents-1" || users(p) != "agents-1 agents-2" {
		t.Fatalf("rotation started: current %s, valid %q", p.Current.Name, users(p))
	}
	e.reconcileCreds(t, nodeA, nodeB)
	invariant("rotation started, no htpasswd holds agents-2")

	placeOn(nodeA)
	if PullHandoverReady(e.store) || wakes != 0 {
		t.Fatalf("handover ready with agents-2 only on %s (wakes %d): %+v", nodeA, wakes, e.store.RegistryPullUsers())
	}
	e.reconcilePull(t)
	e.reconcileCreds(t, nodeA, nodeB)
	invariant("agents-2 on one of two registry agents")
	if c := e.concern(t, nodeA, reconciler.Credentials); c.Hash != "1" {
		t.Fatalf("%s got generation %s while %s's htpasswd lacks agents-2", nodeA, c.Hash, nodeB)
	}

	placeOn(nodeB)
	if wakes != 1 {
		t.Fatalf("the last htpasswd file holding agents-2 woke pullsecret %d times, want 1", wakes)
	}
	if p := e.reconcilePull(t); p.Current.Name != "agents-2" {
		t.Fatalf("after every registry agent holds agents-2: current %s", p.Current.Name)
	}
	e.reconcileCreds(t, nodeA, nodeB)
	invariant("handover")
	for _, a := range []string{nodeA, nodeB} {
		if c := e.concern(t, a, reconciler.Credentials); c.Hash != "2" {
			t.Fatalf("%s after the handover carries %q, want 2", a, c.Hash)
		}
	}
}

// An agent that may not run the registry holds no rotation back; one that
// placement has not written to yet does.
func TestRegistryPullUsersNeedsNone(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.opts.HtpasswdCost = bcrypt.MinCost
	e.spec.App.Constraints = [][]string{{"hostname", "CLUSTER", nodeA}}
	publishBundle(e.store, "CA1")
	e.reconcilePull(t)
	place := NewPlacement(e.deps, e.opts)
	if _, err := place.Reconcile(context.Background(), nodeA); err != nil {
		t.Fatal(err)
	}
	if e.store.RegistryPullUsers().Accepts("agents-1") {
		t.Fatalf("accepted before placement looked at %s: %+v", nodeB, e.store.RegistryPullUsers())
	}
	if _, err := place.Reconcile(context.Background(), nodeB); err != nil {
		t.Fatal(err)
	}
	v := e.store.RegistryPullUsers()
	if !v.Accepts("agents-1") || v.Accepts("agents-2") || !v.Nodes[nodeB].NeedsNone {
		t.Fatalf("view %s", fmt.Sprint(v))
	}
}
