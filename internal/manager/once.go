package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Outcome is the last result of one key in RunOnce.
type Outcome struct {
	Reconciler, Key string
	Err             error // nil: done and in sync as far as the reconciler knows
}

// RunOnce runs every enabled reconciler until no key has work left (keys
// that poll with RequeueAfter are followed; failing keys are tried
// OnceAttempts times), or until ctx is done. It returns every key's last
// outcome.
func (m *Manager) RunOnce(ctx context.Context) ([]Outcome, error) {
	tr := newOnceTracker(m.cfg.OnceAttempts)
	m.mu.Lock()
	m.once = tr
	m.mu.Unlock()
	work, stop, err := m.start()
	if err != nil {
		return nil, err
	}
	defer stop()
	var wg sync.WaitGroup
	m.startWorkers(work, &wg)
	m.ResyncAll()
	var ctxErr error
	select {
	case <-tr.idle():
	case <-ctx.Done():
		ctxErr = fmt.Errorf("run --once did not finish: %w", context.Cause(ctx))
		stop()
	}
	m.shutdownQueues()
	wg.Wait()
	m.finish()
	return tr.outcomes(), ctxErr
}

type itemKey struct{ name, key string }

// onceTracker follows every key enqueued during RunOnce until it is done,
// and remembers each key's last outcome.
type onceTracker struct {
	attempts int

	mu sync.Mutex
	// outstanding maps a key to the generation of its last enqueue; a key
	// enqueued again while it is being processed keeps running afterwards,
	// so finishing only clears it when no enqueue happened since Get.
	outstanding map[itemKey]uint64
	gen         uint64
	failures    map[itemKey]int
	last        map[itemKey]error
	done        chan struct{}
	closed      bool
}

func newOnceTracker(attempts int) *onceTracker {
	return &onceTracker{attempts: attempts, outstanding: map[itemKey]uint64{}, failures: map[itemKey]int{},
		last: map[itemKey]error{}, done: make(chan struct{})}
}

func (t *onceTracker) add(name, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.outstanding[itemKey{name, key}] = t.gen
}

// onceTicket is one Get of a key under RunOnce; under Run (t nil) it
// changes nothing.
type onceTicket struct {
	t   *onceTracker
	k   itemKey
	gen uint64
}

func (m *Manager) onceTicket(name, key string) onceTicket {
	m.mu.Lock()
	t := m.once
	m.mu.Unlock()
	if t == nil {
		return onceTicket{}
	}
	k := itemKey{name, key}
	t.mu.Lock()
	defer t.mu.Unlock()
	return onceTicket{t: t, k: k, gen: t.outstanding[k]}
}

// settle records a reconcile's outcome for the run and bounds what the
// queue does next: a failing key is retried up to the attempts limit, a
// polling key is followed until the run is cancelled, and a key that is
// done is not scheduled again (the run ends when nothing is left).
func (o onceTicket) settle(work context.Context, err error, next step) step {
	if o.t == nil {
		return next
	}
	switch next {
	case retry:
		if o.t.failed(o.k, err) {
			return retry
		}
	case poll:
		if work.Err() == nil {
			o.t.record(o.k, errors.New("still converging"))
			return poll
		}
		err = work.Err()
	}
	o.t.finish(o.k, o.gen, err)
	return forget
}

// failed counts a failure and reports whether the key has attempts left.
func (t *onceTracker) failed(k itemKey, err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures[k]++
	t.last[k] = err
	return t.failures[k] < t.attempts
}

func (t *onceTracker) record(k itemKey, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last[k] = err
}

// finish records a key's final outcome for this run.
func (t *onceTracker) finish(k itemKey, gen uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last[k] = err
	if g, ok := t.outstanding[k]; ok && g != gen {
		return // enqueued again meanwhile: the queue runs it once more
	}
	delete(t.outstanding, k)
	if len(t.outstanding) == 0 && !t.closed {
		t.closed = true
		close(t.done)
	}
}

func (t *onceTracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.outstanding) == 0 && !t.closed {
		t.closed = true
		close(t.done)
	}
	return t.done
}

func (t *onceTracker) outcomes() []Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Outcome
	for k, err := range t.last {
		out = append(out, Outcome{Reconciler: k.name, Key: k.key, Err: err})
	}
	for k := range t.outstanding {
		if _, ok := t.last[k]; !ok {
			out = append(out, Outcome{Reconciler: k.name, Key: k.key, Err: errors.New("did not finish")})
		}
	}
	slices.SortFunc(out, func(a, b Outcome) int {
		if c := strings.Compare(a.Reconciler, b.Reconciler); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}
