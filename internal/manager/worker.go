package manager

import (
	"context"
	"fmt"
)

// processNext is one turn of a worker: take a key, reconcile it, decide
// what the queue does with it next, tell the observers.
func (m *Manager) processNext(work context.Context, c *controller) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	run := m.onceTicket(c.opts.Name, key)
	if !c.enabled() {
		c.apply(key, run.settle(work, nil, forget), Result{})
		return true
	}
	rep := m.reconcile(work, c, key)
	c.apply(key, run.settle(work, rep.Err, decide(rep)), rep.Result)
	m.notifyFinished(rep)
	return true
}

// step is what the queue does with a key after a reconcile.
type step int

const (
	forget step = iota // nothing until the next trigger; resets the backoff
	retry              // again after the key's backoff, which grows
	poll               // again after Result.RequeueAfter; resets the backoff
	resync             // again after Result.ResyncAfter; resets the backoff
)

// decide is controller-runtime's table: errors back off unless terminal,
// RequeueAfter polls, anything else is done.
func decide(r Report) step {
	switch {
	case r.Err != nil && IsTerminal(r.Err):
		return forget
	case r.Err != nil:
		return retry
	case r.Result.RequeueAfter > 0:
		return poll
	case r.Result.ResyncAfter > 0:
		return resync
	}
	return forget
}

func (c *controller) apply(key string, s step, res Result) {
	if s == retry {
		c.queue.AddRateLimited(key)
		return
	}
	c.queue.Forget(key)
	switch s {
	case poll:
		c.queue.AddAfter(key, res.RequeueAfter)
	case resync:
		c.queue.AddAfter(key, res.ResyncAfter)
	}
}

// reconcile runs the reconciler on key with a bounded context and logs a
// returned error: reconcilers return errors, the manager logs them once.
// Reconcilers log through their own loggers: building one per reconcile
// for the context was a steady-state cost (thousands per round) no
// reconciler used.
func (m *Manager) reconcile(work context.Context, c *controller, key string) Report {
	ctx, cancel := m.reconcileContext(work)
	start := m.cfg.Clock.Now()
	res, err := safeReconcile(ctx, c.opts.Reconciler, key)
	cancel()
	r := Report{Reconciler: c.opts.Name, Key: key, Result: res, Err: err, Start: start, Duration: m.cfg.Clock.Since(start)}
	if err != nil {
		m.cfg.Log.Error(err, "reconcile failed", "reconciler", c.opts.Name, "key", key, "terminal", IsTerminal(err),
			"attempt", c.queue.NumRequeues(key)+1)
	}
	return r
}

func (m *Manager) reconcileContext(work context.Context) (context.Context, context.CancelFunc) {
	if m.cfg.ReconcileTimeout != nil {
		if d := m.cfg.ReconcileTimeout(); d > 0 {
			return context.WithTimeout(work, d)
		}
	}
	return context.WithCancel(work)
}

// safeReconcile turns a panic into an error so one bad key cannot take the
// operator down.
func safeReconcile(ctx context.Context, r Reconciler, key string) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v [recovered]", p)
		}
	}()
	return r.Reconcile(ctx, key)
}
