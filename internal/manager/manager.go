// Package manager runs reconcilers the way controller-runtime does: one
// rate-limited, de-duplicating work queue per reconciler, N workers each,
// per-key exponential backoff on error, RequeueAfter for polling, a jittered
// periodic resync, and a bounded drain on shutdown.
//
// It knows nothing of what it runs: the operator passes closures for what
// depends on its configuration (whether a reconciler is enabled, its resync
// keys, the resync interval, the per-reconcile timeout) and observers that
// turn each reconcile's outcome into metrics and status.
package manager

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Options registers one reconciler.
type Options struct {
	Name       string
	Reconciler Reconciler
	// MaxConcurrent workers; one key is never reconciled twice at once.
	MaxConcurrent int
	// Enabled reports whether the reconciler runs now; it is asked before
	// every reconcile and on every resync. nil: always.
	Enabled func() bool
	// Resync lists the keys enqueued on every resync and config change.
	// Reconcilers whose keys come from another (node keys from discovery)
	// leave it nil.
	Resync func() []string
	// BaseBackoff and MaxBackoff bound the per-key retry delay on error.
	BaseBackoff, MaxBackoff time.Duration
}

// Config is what a Manager needs.
type Config struct {
	Log   logr.Logger
	Clock clock.WithTicker
	// ResyncInterval is asked before each periodic resync, so a new value
	// applies from the next one; up to 10% jitter is added. nil, or a
	// value that is not positive, stops the periodic resync.
	ResyncInterval func() time.Duration
	// ReconcileTimeout bounds one Reconcile call; asked before each. nil,
	// or a value that is not positive: no bound but Run's own.
	ReconcileTimeout func() time.Duration
	// Observers are told of every reconcile and every enabled check.
	Observers []Observer
	// GracePeriod bounds how long in-flight reconciles may run after Run's
	// context is done, before their contexts are cancelled.
	GracePeriod time.Duration
	// OnceAttempts is how often RunOnce tries a failing key.
	OnceAttempts int
}

// Manager owns the reconcilers and their queues.
type Manager struct {
	cfg   Config
	ctrls []*controller

	mu      sync.Mutex
	running bool
	once    *onceTracker // non-nil during RunOnce
	fence   context.CancelFunc
}

type controller struct {
	opts  Options
	queue workqueue.TypedRateLimitingInterface[string]
}

func (c *controller) enabled() bool { return c.opts.Enabled == nil || c.opts.Enabled() }

// New returns a Manager with nothing registered.
func New(cfg Config) *Manager {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = 30 * time.Second
	}
	if cfg.OnceAttempts == 0 {
		cfg.OnceAttempts = 3
	}
	return &Manager{cfg: cfg}
}

// Add registers a reconciler. Call before Run or RunOnce.
func (m *Manager) Add(o Options) {
	if o.MaxConcurrent < 1 {
		o.MaxConcurrent = 1
	}
	if o.BaseBackoff == 0 {
		o.BaseBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	c := &controller{opts: o}
	m.ctrls = append(m.ctrls, c)
	m.notifyEnabled(o.Name, c.enabled())
}

func (m *Manager) find(name string) *controller {
	for _, c := range m.ctrls {
		if c.opts.Name == name {
			return c
		}
	}
	return nil
}

// Enqueue asks reconciler name to look at key now. It is a no-op while the
// manager is not running: the first resync of a run looks at everything.
func (m *Manager) Enqueue(name, key string) { m.EnqueueAfter(name, key, 0) }

// EnqueueAfter asks reconciler name to look at key after d.
func (m *Manager) EnqueueAfter(name, key string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.find(name)
	if !m.running || c == nil || c.queue == nil {
		return
	}
	if m.once != nil {
		m.once.add(name, key)
	}
	c.queue.AddAfter(key, d)
}

// ResyncAll enqueues every enabled reconciler's resync keys: the periodic
// resync and every config change go through here.
func (m *Manager) ResyncAll() {
	for _, c := range m.ctrls {
		on := c.enabled()
		m.notifyEnabled(c.opts.Name, on)
		if !on || c.opts.Resync == nil {
			continue
		}
		for _, k := range c.opts.Resync() {
			m.Enqueue(c.opts.Name, k)
		}
	}
}

// Fence cancels every in-flight reconcile at once, without grace. The leader
// elector calls it the moment leadership is in doubt.
func (m *Manager) Fence() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fence != nil {
		m.fence()
	}
}

// Run reconciles until ctx is done, then stops taking work and gives
// in-flight reconciles GracePeriod to finish.
func (m *Manager) Run(ctx context.Context) error {
	work, stop, err := m.start()
	if err != nil {
		return err
	}
	if ctx.Err() != nil { // fenced or stopped before we began: start nothing
		stop()
		m.shutdownQueues()
		m.finish()
		return nil
	}
	var wg sync.WaitGroup
	m.startWorkers(work, &wg)
	m.ResyncAll()
	resync := m.resyncLoop(ctx)

	<-ctx.Done()
	resync()
	m.shutdownQueues()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := m.cfg.Clock.NewTimer(m.cfg.GracePeriod)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C():
		m.cfg.Log.Info("grace period over, cancelling in-flight reconciles", "gracePeriod", m.cfg.GracePeriod)
		stop()
		<-done
	}
	stop()
	m.finish()
	return nil
}

func (m *Manager) start() (context.Context, context.CancelFunc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running {
		return nil, nil, errors.New("manager is already running")
	}
	work, stop := context.WithCancel(context.Background())
	m.fence = stop
	for _, c := range m.ctrls {
		lim := workqueue.NewTypedItemExponentialFailureRateLimiter[string](c.opts.BaseBackoff, c.opts.MaxBackoff)
		c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(lim, workqueue.TypedRateLimitingQueueConfig[string]{
			Name: c.opts.Name, Clock: m.cfg.Clock,
		})
	}
	m.running = true
	return work, stop, nil
}

func (m *Manager) shutdownQueues() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running = false
	for _, c := range m.ctrls {
		c.queue.ShutDown()
	}
}

func (m *Manager) finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.once, m.fence = nil, nil
}

func (m *Manager) startWorkers(work context.Context, wg *sync.WaitGroup) {
	for _, c := range m.ctrls {
		for range c.opts.MaxConcurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for m.processNext(work, c) {
				}
			}()
		}
	}
}

// resyncLoop enqueues everything every interval (asked anew each time,
// jittered by up to 10% so several operators do not beat in step). The
// returned func stops it.
func (m *Manager) resyncLoop(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			iv := m.resyncInterval()
			if iv <= 0 {
				return
			}
			t := m.cfg.Clock.NewTimer(iv + time.Duration(rand.Int64N(int64(iv)/10+1)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
				m.ResyncAll()
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (m *Manager) resyncInterval() time.Duration {
	if m.cfg.ResyncInterval == nil {
		return 0
	}
	return m.cfg.ResyncInterval()
}
