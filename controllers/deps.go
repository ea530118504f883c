package controllers

import (
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Deps are what every reconciler needs. Each constructor takes Deps and
// its own options struct: NewX(Deps, XOptions).
type Deps struct {
	// Spec returns the spec in force. It is always defaulted
	// (v1alpha1.Default): reconcilers read every optional field as set.
	Spec    func() *v1alpha1.Spec
	Store   *state.Store
	Metrics *metrics.Metrics
	Clock   clock.WithTicker
	// Log is the operator's logger; each constructor names it after its
	// reconciler.
	Log logr.Logger
}

// named returns d with its logger named after reconciler name.
func (d Deps) named(name string) Deps {
	d.Log = d.Log.WithName(name)
	return d
}
