package controllers

import (
	"fmt"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/state"
)

// gates tells a CA rotation whether the cluster has caught up, from the
// state views the trust, discovery and app reconcilers own: TrustApplied,
// FleetListed and AppPlacement.
type gates struct {
	spec  *v1alpha1.Spec
	store *state.Store
}

// BundleDistributed: with node trust managed, every node must report the
// new bundle's hash, and the trust and discovery reconcilers must have run
// since it was published (an empty or stale fleet proves nothing). Without
// it, only the overlap period (checked by the caller) protects the switch.
func (g *gates) BundleDistributed(bundle []byte, since time.Time) (bool, string) {
	if !g.spec.TrustEnabled() {
		return true, ""
	}
	hash := state.Hash(bundle)
	applied := g.store.TrustApplied()
	if !applied.LastPass.After(since) {
		return false, "the trust reconciler has not run since the new CA was published"
	}
	fleet := len(applied.Nodes)
	if fleet == 0 {
		if !g.store.FleetListed().After(since) {
			return false, "no nodes known: waiting for discovery to succeed"
		}
		return true, ""
	}
	missing := applied.Missing(hash)
	if len(missing) == 0 {
		return true, ""
	}
	shown := missing
	if len(shown) > 5 {
		shown = shown[:5]
	}
	return false, fmt.Sprintf("%d of %d nodes do not yet carry trust bundle %s: %s", len(missing), fleet,
		hash[:12], strings.Join(shown, ", "))
}

// OldServerRetired: the registry app (and the mirror, which serves the same
// certificate) must have been restarted for the generation that serves the
// new CA's certificate. When the operator does
// not manage the app it cannot know, and the old CA stays trusted until the
// old certificate expires.
func (g *gates) OldServerRetired(gen int64, _ time.Time) (bool, string) {
	if !g.spec.AppEnabled() {
		return false, "the registry app is not managed here, so the old CA stays trusted until the old server certificate expires"
	}
	ids := []string{g.spec.App.ID}
	if g.spec.MirrorEnabled() {
		ids = append(ids, g.spec.Mirror.ID) // it serves the same certificate
	}
	for _, id := range ids {
		a := g.store.AppPlacement(id)
		if !a.Observed {
			return false, fmt.Sprintf("app %s has not been observed yet", id)
		}
		if a.RestartedForGeneration < gen {
			return false, fmt.Sprintf("app %s has not been restarted for certificate generation %d yet", id, gen)
		}
	}
	return true, ""
}
