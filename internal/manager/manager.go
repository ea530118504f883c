// Package manager runs reconcilers the way controller-runtime does: one
// rate-limited, de-duplicating work queue per reconciler, N workers each,
// per-key exponential backoff on error, RequeueAfter for polling, a jittered
// periodic resync, and a bounded drain on shutdown.
package manager

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Options registers one reconciler.
type Options struct {
	Name       string
	Reconciler Reconciler
	// MaxConcurrent workers; one key is never reconciled twice at once.
	MaxConcurrent int
	// Enabled reports whether the reconciler runs under a spec. nil: always.
	Enabled func(*v1alpha1.Spec) bool
	// Resync lists the keys enqueued on every resync and config change.
	// Reconcilers whose keys come from another (node keys from discovery)
	// leave it nil.
	Resync func(*v1alpha1.Spec) []string
	// BaseBackoff and MaxBackoff bound the per-key retry delay on error.
	BaseBackoff, MaxBackoff time.Duration
}

// Config is what a Manager needs.
type Config struct {
	Spec    func() *v1alpha1.Spec
	Store   *state.Store
	Metrics *metrics.Metrics
	Log     logr.Logger
	Clock   clock.WithTicker
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
	m.ctrls = append(m.ctrls, &controller{opts: o})
	m.cfg.Store.UpdateReconciler(o.Name, func(r *state.ReconcilerStatus) { r.Enabled = m.enabled(o) })
}

func (m *Manager) enabled(o Options) bool {
	return o.Enabled == nil || o.Enabled(m.cfg.Spec())
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
	spec := m.cfg.Spec()
	for _, c := range m.ctrls {
		on := c.opts.Enabled == nil || c.opts.Enabled(spec)
		m.cfg.Store.UpdateReconciler(c.opts.Name, func(r *state.ReconcilerStatus) { r.Enabled = on })
		if !on || c.opts.Resync == nil {
			continue
		}
		for _, k := range c.opts.Resync(spec) {
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
	tr := newOnceTracker()
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

// resyncLoop enqueues everything every interval (read from the spec in force,
// jittered by up to 10% so several operators do not beat in step). The
// returned func stops it.
func (m *Manager) resyncLoop(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			iv := m.cfg.Spec().Reconcile.Interval.Duration
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

func (m *Manager) processNext(work context.Context, c *controller) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	name := c.opts.Name
	gen := m.onceGen(name, key)
	if !m.enabled(c.opts) {
		c.queue.Forget(key)
		m.onceDone(name, key, gen, nil)
		return true
	}
	spec := m.cfg.Spec()
	ctx, cancel := context.WithTimeout(work, spec.Reconcile.Timeout.Duration)
	log := m.cfg.Log.WithValues("reconciler", name, "key", key)
	ctx = logr.NewContext(ctx, log)
	start := m.cfg.Clock.Now()
	res, err := safeReconcile(ctx, c.opts.Reconciler, key)
	cancel()
	took := m.cfg.Clock.Since(start)
	mt := m.cfg.Metrics
	mt.ReconcileDuration.WithLabelValues(name).Observe(took.Seconds())

	result := metrics.ResultSuccess
	switch {
	case err != nil:
		result = metrics.ResultError
		log.Error(err, "reconcile failed", "terminal", IsTerminal(err), "attempt", c.queue.NumRequeues(key)+1)
		if IsTerminal(err) {
			c.queue.Forget(key)
			m.onceDone(name, key, gen, err)
		} else if m.onceRetry(name, key, gen, err) {
			c.queue.AddRateLimited(key)
		} else {
			c.queue.Forget(key)
		}
	case res.RequeueAfter > 0:
		result = metrics.ResultRequeue
		c.queue.Forget(key)
		if !m.onceRequeue(work, name, key, gen) {
			break
		}
		c.queue.AddAfter(key, res.RequeueAfter)
	default:
		c.queue.Forget(key)
		m.onceDone(name, key, gen, nil)
		if res.ResyncAfter > 0 && m.tracker() == nil {
			c.queue.AddAfter(key, res.ResyncAfter)
		}
	}
	mt.ReconcileTotal.WithLabelValues(name, result).Inc()
	if err == nil {
		mt.LastSuccess.WithLabelValues(name).Set(float64(m.cfg.Clock.Now().Unix()))
	}
	m.cfg.Store.UpdateReconciler(name, func(r *state.ReconcilerStatus) {
		r.Enabled, r.LastResult, r.LastRun = true, result, start
		r.LastError = ""
		if err != nil {
			r.LastError = err.Error()
		} else {
			r.LastSuccess = m.cfg.Clock.Now()
		}
	})
	return true
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

// --- RunOnce bookkeeping ---

type itemKey struct{ name, key string }

type onceTracker struct {
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

func newOnceTracker() *onceTracker {
	return &onceTracker{outstanding: map[itemKey]uint64{}, failures: map[itemKey]int{},
		last: map[itemKey]error{}, done: make(chan struct{})}
}

func (t *onceTracker) add(name, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.outstanding[itemKey{name, key}] = t.gen
}

func (t *onceTracker) generation(name, key string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.outstanding[itemKey{name, key}]
}

// finish records a key's final outcome for this run.
func (t *onceTracker) finish(name, key string, gen uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := itemKey{name, key}
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
		if a.Reconciler != b.Reconciler {
			return cmpStr(a.Reconciler, b.Reconciler)
		}
		return cmpStr(a.Key, b.Key)
	})
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *Manager) tracker() *onceTracker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.once
}

func (m *Manager) onceGen(name, key string) uint64 {
	if t := m.tracker(); t != nil {
		return t.generation(name, key)
	}
	return 0
}

func (m *Manager) onceDone(name, key string, gen uint64, err error) {
	if t := m.tracker(); t != nil {
		t.finish(name, key, gen, err)
	}
}

// onceRetry reports whether a failed key should be retried: always under
// Run, up to OnceAttempts under RunOnce.
func (m *Manager) onceRetry(name, key string, gen uint64, err error) bool {
	t := m.tracker()
	if t == nil {
		return true
	}
	t.mu.Lock()
	k := itemKey{name, key}
	t.failures[k]++
	t.last[k] = err
	retry := t.failures[k] < m.cfg.OnceAttempts
	t.mu.Unlock()
	if !retry {
		t.finish(name, key, gen, err)
	}
	return retry
}

// onceRequeue: under RunOnce a polling key stays outstanding (the run waits
// for it) unless the run is being cancelled.
func (m *Manager) onceRequeue(work context.Context, name, key string, gen uint64) bool {
	t := m.tracker()
	if t == nil {
		return true
	}
	if work.Err() != nil {
		t.finish(name, key, gen, work.Err())
		return false
	}
	t.mu.Lock()
	t.last[itemKey{name, key}] = errors.New("still converging")
	t.mu.Unlock()
	return true
}
