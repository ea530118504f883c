package controllers

import (
	"context"
	"maps"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// A placement round over many agents reads the secret files the config
// files are made from once, not once per agent: most agents are no
// candidate and only record that they need none. A file changed on disk
// still reaches every candidate in the next round.
func TestPlacementRendersConfigOncePerRound(t *testing.T) {
	f := newSteadyFleet(t, 60, true)
	placement := f.recs[2]
	f.takeReads()
	f.round(t, placement)
	// ci.password is per candidate (htpasswd), on the registry's two.
	want := map[string]int{"/run/registry/http-secret": 1, "/run/registry/hub-user": 1,
		"/run/registry/hub-pass": 1, "/run/registry/ci.password": 2}
	if got := f.takeReads(); !maps.Equal(got, want) {
		t.Errorf("one round over %d agents read %v, want %v", len(f.addrs), got, want)
	}

	f.mu.Lock()
	f.files["/run/registry/http-secret"] = "a-new-http-secret\n"
	f.files["/run/registry/hub-pass"] = "a-new-hub-password\n"
	f.mu.Unlock()
	f.round(t, placement)
	if got := f.takeReads(); !maps.Equal(got, want) {
		t.Errorf("the round after the change read %v, want %v", got, want)
	}
	dir := f.env.spec.App.CertsHostPath
	for _, c := range []struct{ node, dir, secret string }{
		{"198.18.1.1", dir, "a-new-http-secret"}, {"198.18.1.2", dir, "a-new-http-secret"},
		{"198.18.1.3", f.env.spec.Mirror.CertsHostPath, "a-new-hub-password"},
		{"198.18.1.4", f.env.spec.Mirror.CertsHostPath, "a-new-hub-password"},
	} {
		cfg := string(f.env.node(c.node).files[path.Join(c.dir, marathon.ConfigFile)])
		if !strings.Contains(cfg, c.secret) {
			t.Errorf("%s: config.yml after the change does not hold %q:\n%s", c.node, c.secret, cfg)
		}
		if pc := f.env.concern(t, c.node, reconciler.Placement); !pc.InSync || pc.Error != "" {
			t.Errorf("%s: placement after the change: %+v", c.node, pc)
		}
	}
}

// The manager runs several workers per reconciler: what a round shares
// (renders, derived forms, compiled constraints, the trust bundle's
// derivations) is shared between them too. Under -race this shows any
// unguarded use; either way every node ends in sync.
func TestNodeReconcilersShareRoundsAcrossWorkers(t *testing.T) {
	f := newSteadyFleet(t, 40, true)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(f.recs)*4)
	for _, r := range f.recs {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(f.addrs); i += 4 {
					if _, err := r.Reconcile(ctx, f.addrs[i]); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, a := range f.addrs {
		for _, name := range f.names {
			if c := f.env.concern(t, a, name); !c.InSync || len(c.Changes) > 0 {
				t.Errorf("%s %s after a concurrent round: %+v", a, name, c)
			}
		}
	}
}
