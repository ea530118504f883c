package manager

import (
	"context"
	"errors"
	"time"
)

// Reconciler drives one concern toward the spec. It is level-triggered: the
// key only says what to look at; Reconcile reads the world itself.
//
// Contract (controller-runtime's): a returned error is logged by the manager
// and the key retried with per-key exponential backoff, so reconcilers return
// errors rather than log them. RequeueAfter > 0 polls again after that long
// and resets the backoff. A zero Result is done until the next trigger.
type Reconciler interface {
	Reconcile(ctx context.Context, key string) (Result, error)
}

// Result is what a successful Reconcile asks of the manager.
//
// RequeueAfter means "not done yet, look again after this": a deployment in
// progress, a rotation waiting for nodes. `run --once` waits for such keys.
// ResyncAfter means "done; the next check is due after this" (a renewal
// time): `run --once` counts the key as converged, `run` schedules it.
type Result struct {
	RequeueAfter time.Duration
	ResyncAfter  time.Duration
}

// Func adapts a function to a Reconciler.
type Func func(ctx context.Context, key string) (Result, error)

// Reconcile calls f.
func (f Func) Reconcile(ctx context.Context, key string) (Result, error) { return f(ctx, key) }

type terminalError struct{ err error }

func (t terminalError) Error() string { return t.err.Error() }
func (t terminalError) Unwrap() error { return t.err }
func (t terminalError) Is(target error) bool {
	_, ok := target.(terminalError)
	return ok
}

// TerminalError marks an error that retrying cannot fix (a spec Marathon
// rejects, a host key mismatch). It is recorded and counted, never retried
// with backoff; the key runs again on the next resync or trigger.
func TerminalError(err error) error {
	if err == nil {
		return nil
	}
	return terminalError{err: err}
}

// IsTerminal reports whether err was marked with TerminalError.
func IsTerminal(err error) bool { return errors.Is(err, terminalError{}) }
