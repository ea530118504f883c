package controllers

import (
	"fmt"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/pullsecret"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// publish turns the pull password's state into the PullSecret view and
// its metrics. The view carries the passwords (readers need them); the
// metrics and status only generations and times.
//
// give is the generation agents get (the view's Current): s.Current, or
// the previous one while the registry does not accept s.Current yet.
func (r *PullSecret) publish(spec *v1alpha1.Spec, rot pullsecret.Rotator, s pullsecret.State, d pullsecret.Decision,
	pending []string, give pullsecret.Credential) {
	user := spec.Auth.Htpasswd.PullUser
	pu := func(c pullsecret.Credential) state.PullUser {
		return state.PullUser{Name: pullsecret.UserName(user, c.Generation), Generation: int(c.Generation), Password: c.Password}
	}
	cur := pu(give)
	valid := []state.PullUser{pu(s.Current)}
	if p := s.Previous; p != nil {
		valid = append(valid, pu(*p))
	}
	if give.Generation != s.Current.Generation {
		d.Reason = fmt.Sprintf("generation %d goes to agents once the registry accepts it (its htpasswd file on "+
			"the registry's agents holds %s)", s.Current.Generation, valid[0].Name)
	}
	next := rot.NextRotation(s)
	r.Store.SetPullSecret(state.PullSecret{Ready: true, Current: cur, Valid: valid, NextRotation: next,
		Lagging: d.Lagging, Overdue: d.Overdue, Phase: d.Reason, Pending: pending})
	r.Metrics.PullPasswordGeneration.Set(float64(s.Current.Generation))
	r.Metrics.PullPasswordNextRotation.Set(unix(next))
	r.Metrics.PullCredentialsLagging.Set(float64(len(d.Lagging)))
	r.Metrics.PullCredentialsOverdue.Set(boolGauge(d.Overdue))
	r.Metrics.SetOutOfSync(reconciler.PullSecret, PullSecretKey, len(pending) > 0)
}

// notReady records why the pull password cannot be used now. The users
// published before stay, so nothing is withdrawn from the registry or
// the agents because of a fault here.
func (r *PullSecret) notReady(err error) {
	p := r.Store.PullSecret()
	p.Ready, p.Reason, p.Pending = false, err.Error(), nil
	r.Store.SetPullSecret(p)
	r.Metrics.SetOutOfSync(reconciler.PullSecret, PullSecretKey, true)
}

// nextCheck is when the decision can change without an agent changing:
// the next rotation, the end of the grace, or the moment lagging agents
// become overdue. Agents' progress wakes the reconciler on its own
// (setup.go: TopicNodes while a rotation is under way).
func (r *PullSecret) nextCheck(rot pullsecret.Rotator, s pullsecret.State, d pullsecret.Decision) time.Duration {
	now := r.Clock.Now()
	next := d.Next
	if s.Previous != nil && len(d.Lagging) > 0 && !d.Overdue {
		if at := s.Current.Created.Add(rot.Grace()); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		return MaxPullSecretResync
	}
	return min(max(next.Sub(now), time.Second), MaxPullSecretResync)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// PullRotationCanMove reports whether a rotation under way may take its
// next step because of the agents: every reachable agent carries the
// current generation. The setup wakes the reconciler on node changes only
// then, rather than for each of N agents reporting in (the grace's end and
// the overdue moment come from its own ResyncAfter).
func PullRotationCanMove(st *state.Store) bool {
	ps := st.PullSecret()
	if !ps.Rotating() {
		return false
	}
	for _, n := range st.CredentialsCarried() {
		if n.Reachable && n.Generation != int64(ps.Current.Generation) {
			return false
		}
	}
	return true
}

// PullHandoverReady reports whether a rotation holds the new generation
// back from agents (the view's Current is still the previous one) and the
// registry now accepts it: the setup wakes the reconciler then, rather
// than for every htpasswd file placement writes.
func PullHandoverReady(st *state.Store) bool {
	ps := st.PullSecret()
	if !ps.Rotating() || ps.Current.Name == ps.Valid[0].Name {
		return false
	}
	return st.RegistryPullUsers().Accepts(ps.Valid[0].Name)
}
