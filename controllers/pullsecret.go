package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/pullsecret"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// PullSecretKey is the one key the pullsecret reconciler serves.
const PullSecretKey = "pull"

// MaxPullSecretResync bounds how long the reconciler sleeps when nothing
// is due, so a state file edited by hand or a changed clock is noticed.
const MaxPullSecretResync = time.Hour

// PullSecret owns the generated pull password: it creates it, rotates it
// per spec.auth.htpasswd.pullPasswordRotation, keeps it in the PKI state
// store (pull-password.key) and publishes the users the registry must
// accept as the PullSecret view. A rotation drops the previous generation
// only once every known, reachable agent carries the new one
// (CredentialsCarried) and the grace has passed.
type PullSecret struct {
	Deps
	openStore func(*v1alpha1.Spec) pki.Store
	rand      io.Reader
	// rec is report mode's store, kept across passes so a long-running
	// report-mode operator works on the state it would have made rather
	// than a new password each pass.
	rec *pki.RecordingStore
	// recorded are the steps rec has recorded, owed until enforced.
	recorded []string
	accepts  func(user string) bool
}

// PullSecretOptions are the pullsecret reconciler's own options.
type PullSecretOptions struct {
	// PKIStore opens the store holding pull-password.key: a part of the
	// certificates' state set (pki.Shared.Part), so neither reconciler's
	// save drops the other's files. Default: the tls.stateDir directory.
	PKIStore func(*v1alpha1.Spec) pki.Store
	// Rand is the source of new passwords; crypto/rand when nil.
	Rand io.Reader
	// RegistryAccepts reports whether the registry accepts user now: the
	// htpasswd file on every agent that may run it holds user. During a
	// rotation the new generation goes to agents (becomes the view's
	// Current) only once it does, so no agent pulls with a password the
	// registry does not know yet. nil: no such gate.
	RegistryAccepts func(user string) bool
}

// NewPullSecret returns the pullsecret reconciler.
func NewPullSecret(d Deps, o PullSecretOptions) *PullSecret {
	r := &PullSecret{Deps: d.named(reconciler.PullSecret), openStore: o.PKIStore, rand: o.Rand, accepts: o.RegistryAccepts}
	if r.openStore == nil {
		// Without a shared lock, but still a part: a save keeps the
		// certificates' files.
		var sh pki.Shared
		r.openStore = func(s *v1alpha1.Spec) pki.Store {
			return sh.Part(pki.NewDirStore(s.TLS.StateDir), pki.PullPasswordFiles...)
		}
	}
	return r
}

// Reconcile implements manager.Reconciler.
func (r *PullSecret) Reconcile(ctx context.Context, _ string) (manager.Result, error) {
	spec := r.Spec()
	if spec == nil || !spec.CredentialsEnabled() {
		return manager.Result{}, nil
	}
	st := r.store(spec)
	cur, err := loadPullState(ctx, st)
	if err != nil {
		r.notReady(err)
		return manager.Result{}, err
	}
	rot := pullsecret.Rotator{Clock: r.Clock, Rand: r.rand, Rotation: spec.Auth.Htpasswd.PullPasswordRotation.Duration}
	agents := r.agents()
	if cur != nil && cur.Previous != nil && r.Store.FleetListed().IsZero() {
		// Before discovery has listed the fleet, no agent list proves
		// that every agent carries the new generation.
		d := pullsecret.Decision{Action: pullsecret.ActionWait, Reason: "waiting for discovery to list the agents"}
		r.publish(spec, rot, *cur, d, nil, r.distributed(spec, *cur))
		return manager.Result{ResyncAfter: time.Minute}, nil
	}
	next, d, err := rot.Step(cur, agents)
	if err != nil {
		r.notReady(err)
		return manager.Result{}, manager.TerminalError(err)
	}
	var changes []string
	if d.Action != pullsecret.ActionNone && d.Action != pullsecret.ActionWait {
		b, err := pullsecret.Marshal(next)
		if err != nil {
			r.notReady(err)
			return manager.Result{}, err
		}
		if err := st.Save(ctx, pki.Files{pki.FilePullPassword: b}); err != nil {
			err = fmt.Errorf("save the pull password state: %w", err)
			r.notReady(err)
			return manager.Result{}, err
		}
		changes = []string{describePullStep(d, cur, next)}
		if !spec.Report() {
			r.Log.Info("pull password state updated", "action", string(d.Action), "generation", next.Current.Generation,
				"reason", d.Reason, "store", st.Where())
		}
		// What the new state waits for, for status and the next check.
		if d, err = rot.Decide(&next, agents); err != nil {
			return manager.Result{}, err
		}
	}
	var pending []string
	if spec.Report() {
		r.recorded = append(r.recorded, changes...)
		pending = slices.Clone(r.recorded)
	}
	give := r.distributed(spec, next)
	r.publish(spec, rot, next, d, pending, give)
	if give.Generation != next.Current.Generation {
		// Polls: the registry's agents take the new htpasswd within a pass.
		return manager.Result{RequeueAfter: htpasswdPoll}, nil
	}
	return manager.Result{ResyncAfter: r.nextCheck(rot, next, d)}, nil
}

// htpasswdPoll is how often a rotation checks whether the registry accepts
// the new generation yet.
const htpasswdPoll = 5 * time.Second

// distributed is the generation agents should carry now: the current one,
// or during a rotation the previous one until the registry accepts the
// current one (RegistryAccepts).
func (r *PullSecret) distributed(spec *v1alpha1.Spec, s pullsecret.State) pullsecret.Credential {
	if s.Previous == nil || r.accepts == nil ||
		r.accepts(pullsecret.UserName(spec.Auth.Htpasswd.PullUser, s.Current.Generation)) {
		return s.Current
	}
	return *s.Previous
}

// store is the one place report mode is decided for this reconciler: in
// report mode it works on a store that records saves and writes nothing.
func (r *PullSecret) store(spec *v1alpha1.Spec) pki.Store {
	st := r.openStore(spec)
	if !spec.Report() {
		r.rec, r.recorded = nil, nil
		return st
	}
	if r.rec == nil || r.rec.Where() != st.Where() {
		r.rec, r.recorded = pki.Recording(st), nil
	}
	return r.rec
}

// loadPullState reads pull-password.key: nil when there is none yet. A
// file that cannot be read or parsed is an error naming it; it is never
// replaced by a new password behind the operator's back.
func loadPullState(ctx context.Context, st pki.Store) (*pullsecret.State, error) {
	f, err := st.Load(ctx)
	if err != nil {
		var bad pki.Corruption
		if errors.As(err, &bad) {
			return nil, fmt.Errorf("pull password state in %s is unusable: %w; repair or move it away "+
				"(a new pull password is made only when there is none)", st.Where(), err)
		}
		return nil, fmt.Errorf("read the pull password state from %s: %w", st.Where(), err)
	}
	b, ok := f[pki.FilePullPassword]
	if !ok {
		return nil, nil
	}
	s, err := pullsecret.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("pull password state in %s: %w; repair or move it away "+
			"(a new pull password is made only when there is none)", st.Where(), err)
	}
	return &s, nil
}

// agents is the CredentialsCarried view as the rotator wants it.
func (r *PullSecret) agents() []pullsecret.Agent {
	var out []pullsecret.Agent
	for _, n := range r.Store.CredentialsCarried() {
		out = append(out, pullsecret.Agent{Name: n.Address, Reachable: n.Reachable, Generation: n.Generation})
	}
	return out
}

// describePullStep says what a step saved, without any secret.
func describePullStep(d pullsecret.Decision, cur *pullsecret.State, next pullsecret.State) string {
	g := next.Current.Generation
	switch d.Action {
	case pullsecret.ActionCreate:
		return fmt.Sprintf("create pull password generation %d", g)
	case pullsecret.ActionRotate:
		return fmt.Sprintf("rotate the pull password to generation %d (%s); generation %d stays valid until every agent carries %d",
			g, d.Reason, cur.Current.Generation, g)
	case pullsecret.ActionDropPrevious:
		return fmt.Sprintf("drop pull password generation %d (%s)", cur.Previous.Generation, d.Reason)
	}
	return fmt.Sprintf("record pull password progress: %s", d.Reason)
}
