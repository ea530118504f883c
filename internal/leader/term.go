package leader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// leadTerm runs lead for as long as this instance leads in session gen.
func (e *Elector) leadTerm(ctx context.Context, gen uint64, own string, lead func(context.Context) error, fence func()) error {
	ok, _, w, err := e.conn.ExistsW(own)
	if err != nil {
		return fmt.Errorf("watch own candidate %s: %w", own, err)
	}
	if !ok {
		e.clearNode(own)
		return errNodeGone
	}
	e.mu.Lock()
	// Checked under the lock the state callback takes: either the session
	// is still the one that won, or the term never starts.
	if !e.hasSession || e.sessionGen != gen {
		e.mu.Unlock()
		return errSuspended
	}
	e.leading, e.fence = true, fence
	e.leader = e.cfg.Self
	e.ready, e.reason = true, "leading"
	e.setGauge(1)
	e.mu.Unlock()
	e.cfg.Log.Info("leading", "node", own, "path", e.cfg.Path)

	// The run's context is cancelled by the elector only, after the fence.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- lead(runCtx) }()
	for {
		select {
		case err := <-done:
			cancel()
			e.stepDown()
			return &LeadEndedError{Err: err}
		case <-ctx.Done():
			e.stepDown()
			e.endRun(cancel, done, fence)
			e.cfg.Log.Info("stopped leading: shutting down, releasing leadership", "node", own)
			return ctx.Err()
		case ev := <-w:
			e.stepDown()
			e.endRun(cancel, done, fence)
			if ev.Type == zk.EventNodeDeleted {
				e.clearNode(own)
				e.cfg.Log.Info("stopped leading: own candidate znode was deleted", "node", own)
				return errNodeGone
			}
			e.cfg.Log.Info("stopped leading: own candidate znode changed", "node", own, "event", ev.Type.String())
			return fmt.Errorf("own candidate %s: %s", own, ev.Type)
		case <-e.wake:
			if e.IsLeader() {
				continue
			}
			// The state callback has fenced already.
			e.endRun(cancel, done, fence)
			e.cfg.Log.Info("stopped leading: ZooKeeper session suspended", "node", own, "reason", e.Reason())
			return errSuspended
		}
	}
}

// endRun cancels the leading run and waits for it to return, fencing again
// meanwhile: a run that was still starting when the term ended may have
// begun work after the first fence.
func (e *Elector) endRun(cancel context.CancelFunc, done <-chan error, fence func()) {
	cancel()
	fence()
	t := time.NewTicker(refenceEvery)
	defer t.Stop()
	start := time.Now()
	warned := false
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				e.cfg.Log.Info("leading run ended with an error", "err", err.Error())
			}
			return
		case <-t.C:
			fence()
			if !warned && time.Since(start) > 5*time.Second {
				warned = true
				e.cfg.Log.Info("still waiting for in-flight reconciles to stop after the fence")
			}
		}
	}
}

// release deletes the own candidate znode, if any, so the next candidate
// is notified now rather than at session expiry.
func (e *Elector) release() {
	e.stepDown()
	e.mu.Lock()
	own, sess := e.node, e.nodeSession
	e.node = ""
	e.ready, e.reason = false, "stopped"
	e.mu.Unlock()
	if own == "" || sess != e.conn.SessionID() {
		return
	}
	done := make(chan error, 1)
	go func() { done <- e.conn.Delete(own, -1) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			e.cfg.Log.Info("could not delete own candidate znode; it goes when the session ends", "node", own, "err", err.Error())
			return
		}
		e.cfg.Log.Info("released leadership candidacy", "node", own)
	case <-time.After(e.cfg.SessionTimeout):
		e.cfg.Log.Info("could not delete own candidate znode in time; it goes when the session ends", "node", own)
	}
}
