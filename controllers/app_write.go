package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

func (r *AppReconciler) create(ctx context.Context, p *pass) (manager.Result, error) {
	p.st.Diff = []string{"app: <unset> -> create " + p.desired.Container.Docker.Image}
	if p.tr.rejected == p.hash {
		return r.record(p, manager.TerminalError(p.tr.rejectedErr))
	}
	drift := p.tr.syncedHash == p.hash
	dep, err := p.client.CreateApp(ctx, p.desired)
	if err != nil {
		if marathon.KindOf(err) == marathon.KindConflict { // created meanwhile: read it again
			return r.recordRequeue(p, nil)
		}
		return r.writeFailed(p, err)
	}
	if drift {
		r.Metrics.DriftCorrections.WithLabelValues(reconciler.App).Inc()
		p.log.Info("recreating app that was deleted", "deployment", dep)
	} else {
		p.log.Info("created app", "deployment", dep)
	}
	r.started(p, dep, "create", 0)
	return r.recordRequeue(p, nil)
}

func (r *AppReconciler) update(ctx context.Context, p *pass, cur *marathon.AppStatus) (manager.Result, error) {
	if p.tr.rejected == p.hash {
		return r.record(p, manager.TerminalError(p.tr.rejectedErr))
	}
	force := false
	if len(cur.Deployments) == 0 {
		p.tr.lockedSince = time.Time{} // a lock seen earlier is over: wait afresh next time
	} else {
		if p.tr.lockedSince.IsZero() {
			p.tr.lockedSince = p.now
			if p.tr.deployment != "" {
				p.tr.lockedSince = p.tr.deployStarted
			}
		}
		if waited := p.now.Sub(p.tr.lockedSince); waited < p.timeout {
			p.st.LastError = fmt.Sprintf("waiting for deployment(s) %v to finish before changing the app", cur.Deployments)
			return r.recordRequeue(p, nil)
		}
		force = true
		p.log.Info("forcing the update over deployments that have not finished within app.deploymentTimeout",
			"deployments", cur.Deployments, "timeout", p.timeout.String())
	}
	body, err := marathon.UpdateBody(p.desired, cur.Definition)
	if err != nil {
		return r.record(p, err)
	}
	drift := p.tr.syncedHash == p.hash
	dep, err := p.client.UpdateApp(ctx, p.key, body, force)
	if err != nil {
		return r.writeFailed(p, err)
	}
	if drift {
		r.Metrics.DriftCorrections.WithLabelValues(reconciler.App).Inc()
		p.log.Info("repairing drift", "diff", p.st.Diff, "deployment", dep)
	} else {
		p.log.Info("updating app to the spec", "diff", p.st.Diff, "deployment", dep)
	}
	p.tr.lockedSince = time.Time{}
	r.started(p, dep, "update", 0)
	return r.recordRequeue(p, nil)
}

// writeFailed handles a write that did not happen: withheld in report mode,
// wait on a lock, stop on a rejection, back off on anything else. It never
// retries a write by itself.
func (r *AppReconciler) writeFailed(p *pass, err error) (manager.Result, error) {
	if errors.Is(err, marathon.ErrNotSent) {
		p.log.Info("app differs from the spec (report mode: not changed)", "diff", p.st.Diff)
		return r.record(p, nil)
	}
	var me *marathon.Error
	errors.As(err, &me)
	switch marathon.KindOf(err) {
	case marathon.KindLocked:
		if p.tr.lockedSince.IsZero() {
			p.tr.lockedSince = p.now
		}
		p.st.LastError = fmt.Sprintf("waiting for deployment(s) %v to finish before changing the app", me.Deployments)
		return r.recordRequeue(p, nil)
	case marathon.KindInvalid:
		p.tr.rejected = p.hash
		p.tr.rejectedErr = fmt.Errorf("app %s rejected by Marathon: %w; fix the spec (the operator will not resend it)", p.key, err)
		// Returned, not logged: the manager logs it once, details included.
		p.st.Diff = append(p.st.Diff, prefixed("rejected ", me.DetailLines())...)
		return r.record(p, manager.TerminalError(p.tr.rejectedErr))
	case marathon.KindNotFound:
		return r.recordRequeue(p, nil) // deleted meanwhile: the next pass creates it
	}
	return r.record(p, fmt.Errorf("write app %s: %w", p.key, err))
}

func (r *AppReconciler) started(p *pass, dep, kind string, gen int64) {
	p.tr.deployment, p.tr.deployKind, p.tr.deployStarted, p.tr.deployGen = dep, kind, p.now, gen
	p.tr.rejected, p.tr.rejectedErr = "", nil
	p.st.InSync = false
}
