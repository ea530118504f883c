package manager

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
)

// Reconciler names as the operator registers them; the manager gives them
// no meaning.
const (
	nameCertificates = "certificates"
	nameTrust        = "trust"
	nameConntrack    = "conntrack"
	nameApp          = "app"
)

// recorder is a hand-written reconciler whose behaviour each test scripts.
type recorder struct {
	mu       sync.Mutex
	calls    []call
	inFlight map[string]int
	overlap  bool
	fn       func(ctx context.Context, key string, n int) (Result, error)
}

type call struct {
	key string
	at  time.Time
}

func (r *recorder) Reconcile(ctx context.Context, key string) (Result, error) {
	r.mu.Lock()
	if r.inFlight == nil {
		r.inFlight = map[string]int{}
	}
	r.inFlight[key]++
	if r.inFlight[key] > 1 {
		r.overlap = true
	}
	n := 0
	for _, c := range r.calls {
		if c.key == key {
			n++
		}
	}
	r.calls = append(r.calls, call{key, time.Now()})
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.inFlight[key]--; r.mu.Unlock() }()
	if r.fn == nil {
		return Result{}, nil
	}
	return r.fn(ctx, key, n)
}

func (r *recorder) times(key string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, c := range r.calls {
		if c.key == key {
			out = append(out, c.at)
		}
	}
	return out
}

// observer is a test-local Observer: it keeps every report and the last
// enabled state of each reconciler.
type observer struct {
	mu      sync.Mutex
	reports []Report
	enabled map[string]bool
}

func (o *observer) Enabled(name string, on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.enabled == nil {
		o.enabled = map[string]bool{}
	}
	o.enabled[name] = on
}

func (o *observer) Finished(r Report) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reports = append(o.reports, r)
}

// count is how many reconciles of name ended in outcome: "error",
// "requeue" or "success", the operator's metric labels.
func (o *observer) count(name, outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, r := range o.reports {
		got := "success"
		switch {
		case r.Err != nil:
			got = "error"
		case r.Result.RequeueAfter > 0:
			got = "requeue"
		}
		if r.Reconciler == name && got == outcome {
			n++
		}
	}
	return n
}

func (o *observer) last(name string) (Report, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.reports) - 1; i >= 0; i-- {
		if o.reports[i].Reconciler == name {
			return o.reports[i], true
		}
	}
	return Report{}, false
}

type harness struct {
	m        *Manager
	obs      *observer
	interval atomic.Int64 // time.Duration
}

func newHarness(t *testing.T, interval time.Duration) *harness {
	t.Helper()
	h := &harness{obs: &observer{}}
	h.interval.Store(int64(interval))
	h.m = New(Config{Log: logr.Discard(), GracePeriod: 5 * time.Second, Observers: []Observer{h.obs},
		ResyncInterval:   func() time.Duration { return time.Duration(h.interval.Load()) },
		ReconcileTimeout: func() time.Duration { return time.Minute }})
	return h
}

func keys(k ...string) func() []string { return func() []string { return k } }

func TestErrorsBackOffExponentially(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		r := &recorder{fn: func(_ context.Context, _ string, n int) (Result, error) {
			if n < 4 {
				return Result{}, errors.New("node unreachable")
			}
			return Result{}, nil
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, Resync: keys("a"),
			BaseBackoff: time.Second, MaxBackoff: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		time.Sleep(time.Minute)
		cancel()
		synctest.Wait()
		ts := r.times("a")
		if len(ts) != 5 {
			t.Fatalf("want 5 attempts (4 failures then success), got %d", len(ts))
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
		for i, w := range want {
			if got := ts[i+1].Sub(ts[i]); got != w {
				t.Errorf("gap %d = %s, want %s", i, got, w)
			}
		}
		if got := h.obs.count(nameTrust, "error"); got != 4 {
			t.Errorf("error count = %v, want 4", got)
		}
		if got := h.obs.count(nameTrust, "success"); got != 1 {
			t.Errorf("success count = %v, want 1", got)
		}
	})
}

func TestRequeueAfterPollsAndResetsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		r := &recorder{fn: func(_ context.Context, _ string, n int) (Result, error) {
			switch n {
			case 0:
				return Result{}, errors.New("transient")
			case 1, 2:
				return Result{RequeueAfter: 10 * time.Second}, nil
			}
			return Result{}, errors.New("transient again")
		}}
		h.m.Add(Options{Name: nameApp, Reconciler: r, Resync: keys("/registry"),
			BaseBackoff: time.Second, MaxBackoff: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		time.Sleep(22 * time.Second)
		cancel()
		synctest.Wait()
		ts := r.times("/registry")
		if len(ts) < 4 {
			t.Fatalf("got %d calls", len(ts))
		}
		gaps := []time.Duration{ts[1].Sub(ts[0]), ts[2].Sub(ts[1]), ts[3].Sub(ts[2])}
		if gaps[0] != time.Second || gaps[1] != 10*time.Second || gaps[2] != 10*time.Second {
			t.Errorf("gaps = %v, want [1s 10s 10s]", gaps)
		}
		// After a RequeueAfter the failure count is forgotten: the next error backs off from the base again.
		if len(ts) >= 5 && ts[4].Sub(ts[3]) != time.Second {
			t.Errorf("backoff after requeue = %s, want 1s", ts[4].Sub(ts[3]))
		}
	})
}

func TestKeysAreDeduplicatedAndNeverConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		release := make(chan struct{})
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			if n == 0 {
				<-release
			}
			return Result{}, nil
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, MaxConcurrent: 4})
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		synctest.Wait()
		h.m.Enqueue(nameTrust, "n1")
		synctest.Wait() // n1 is now in flight
		for range 5 {
			h.m.Enqueue(nameTrust, "n1") // while processing: marked dirty once
			h.m.Enqueue(nameTrust, "n2")
		}
		synctest.Wait()
		close(release)
		synctest.Wait()
		cancel()
		synctest.Wait()
		if got := len(r.times("n1")); got != 2 {
			t.Errorf("n1 ran %d times, want 2 (once, then once more for the enqueues during it)", got)
		}
		if got := len(r.times("n2")); got != 1 {
			t.Errorf("n2 ran %d times, want 1", got)
		}
		if r.overlap {
			t.Error("a key was reconciled twice at once")
		}
	})
}

func TestResyncEnqueuesEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Minute)
		r := &recorder{}
		off := &recorder{}
		h.m.Add(Options{Name: nameCertificates, Reconciler: r, Resync: keys("tls")})
		h.m.Add(Options{Name: nameConntrack, Reconciler: off, Enabled: func() bool { return false },
			Resync: keys("x")})
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		time.Sleep(5*time.Minute + 30*time.Second)
		cancel()
		synctest.Wait()
		n := len(r.times("tls"))
		// One at start plus one per jittered interval (60-66s): 5 or 6 in 5m30s.
		if n < 5 || n > 6 {
			t.Errorf("resync ran %d times in 5m30s with a 1m interval", n)
		}
		if len(off.calls) != 0 {
			t.Errorf("a disabled reconciler ran")
		}
		h.obs.mu.Lock()
		defer h.obs.mu.Unlock()
		if on, off := h.obs.enabled[nameCertificates], h.obs.enabled[nameConntrack]; !on || off {
			t.Errorf("observer told enabled=%v for certificates, %v for conntrack; want true, false", on, off)
		}
	})
}

func TestConfigChangeAppliesNewInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		r := &recorder{}
		h.m.Add(Options{Name: nameCertificates, Reconciler: r, Resync: keys("tls")})
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		synctest.Wait()
		h.interval.Store(int64(10 * time.Second))
		h.m.ResyncAll() // what a reload does
		synctest.Wait()
		if got := len(r.times("tls")); got != 2 {
			t.Fatalf("a config change must trigger a pass at once: %d calls", got)
		}
		cancel()
		synctest.Wait()
	})
}

func TestShutdownDrainsWithinGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		var cancelled atomic.Bool
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			select {
			case <-time.After(time.Hour): // a hung node
			case <-ctx.Done():
				cancelled.Store(true)
			}
			return Result{}, ctx.Err()
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, Resync: keys("hung")})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan time.Time)
		go func() { h.m.Run(ctx); done <- time.Now() }()
		synctest.Wait()
		start := time.Now()
		cancel()
		end := <-done
		if got := end.Sub(start); got != 5*time.Second {
			t.Errorf("Run returned %s after cancel, want the 5s grace period", got)
		}
		if !cancelled.Load() {
			t.Error("in-flight reconcile was not cancelled after the grace period")
		}
	})
}

func TestShutdownWaitsForQuickWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		var finished atomic.Bool
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			time.Sleep(2 * time.Second)
			finished.Store(ctx.Err() == nil)
			return Result{}, nil
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, Resync: keys("a")})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { h.m.Run(ctx); close(done) }()
		synctest.Wait()
		cancel()
		<-done
		if !finished.Load() {
			t.Error("in-flight work was not allowed to finish within the grace period")
		}
	})
}

func TestFenceCancelsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		var at atomic.Int64
		start := time.Now()
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			<-ctx.Done()
			at.Store(int64(time.Since(start)))
			return Result{}, ctx.Err()
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, Resync: keys("a")})
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		time.Sleep(time.Second)
		h.m.Fence()
		synctest.Wait()
		if got := time.Duration(at.Load()); got != time.Second {
			t.Errorf("fenced reconcile saw cancellation after %s, want 1s", got)
		}
		cancel()
		synctest.Wait()
	})
}

func TestPanicIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			if n == 0 {
				panic("boom")
			}
			return Result{}, nil
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, Resync: keys("a")})
		out, err := h.m.RunOnce(t.Context())
		if err != nil || len(out) != 1 || out[0].Err != nil {
			t.Fatalf("want recovery then success, got %v %v", out, err)
		}
		if r, ok := h.obs.last(nameTrust); !ok || r.Err != nil || h.obs.count(nameTrust, "error") != 1 {
			t.Errorf("observer saw %+v, want the recovered panic as an error, then success", h.obs.reports)
		}
	})
}

func TestRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		// certificates finishes, then fans out to trust keys; trust "bad" never works;
		// app polls twice before it is done; a terminal error is not retried.
		trust := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			if key == "bad" {
				return Result{}, errors.New("connection refused")
			}
			return Result{}, nil
		}}
		app := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			if n < 2 {
				return Result{RequeueAfter: 3 * time.Second}, nil
			}
			return Result{}, nil
		}}
		ui := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			return Result{}, TerminalError(errors.New("422 invalid"))
		}}
		certs := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			h.m.Enqueue(nameTrust, "good")
			h.m.Enqueue(nameTrust, "bad")
			return Result{}, nil
		}}
		h.m.Add(Options{Name: nameCertificates, Reconciler: certs, Resync: keys("tls")})
		h.m.Add(Options{Name: nameTrust, Reconciler: trust, MaxConcurrent: 2})
		h.m.Add(Options{Name: nameApp, Reconciler: app, Resync: keys("/registry", "/ui")})
		h.m.Add(Options{Name: "ui", Reconciler: ui, Resync: keys("/ui")})
		start := time.Now()
		out, err := h.m.RunOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]error{}
		for _, o := range out {
			got[o.Reconciler+"/"+o.Key] = o.Err
		}
		for k, wantErr := range map[string]bool{"certificates/tls": false, "trust/good": false, "trust/bad": true,
			"app//registry": false, "app//ui": false, "ui//ui": true} {
			e, ok := got[k]
			if !ok || (e != nil) != wantErr {
				t.Errorf("%s: err=%v present=%v, want error=%v", k, e, ok, wantErr)
			}
		}
		if n := len(trust.times("bad")); n != 3 {
			t.Errorf("failing key tried %d times, want 3", n)
		}
		if n := len(ui.times("/ui")); n != 1 {
			t.Errorf("terminal error retried: %d calls", n)
		}
		if d := time.Since(start); d < 6*time.Second {
			t.Errorf("RunOnce returned after %s, before the polling app finished (6s)", d)
		}
	})
}

func TestRunOnceDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			return Result{RequeueAfter: time.Second}, nil // a deployment that never ends
		}}
		h.m.Add(Options{Name: nameApp, Reconciler: r, Resync: keys("/registry")})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := h.m.RunOnce(ctx)
		if err == nil {
			t.Fatal("RunOnce must report that it did not finish")
		}
		if len(out) != 1 || out[0].Err == nil {
			t.Errorf("outcome must say the key did not converge: %+v", out)
		}
	})
}

func TestResyncAfterSchedulesButCountsAsDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			return Result{ResyncAfter: 10 * time.Second}, nil // the next renewal check
		}}
		h.m.Add(Options{Name: nameCertificates, Reconciler: r, Resync: keys("tls")})
		out, err := h.m.RunOnce(t.Context())
		if err != nil || len(out) != 1 || out[0].Err != nil {
			t.Fatalf("once: a scheduled next check is converged: %+v %v", out, err)
		}
		if n := len(r.times("tls")); n != 1 {
			t.Fatalf("once ran the key %d times", n)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go h.m.Run(ctx)
		time.Sleep(35 * time.Second)
		cancel()
		synctest.Wait()
		ts := r.times("tls")
		if len(ts) != 5 || ts[2].Sub(ts[1]) != 10*time.Second {
			t.Errorf("run: want the key at 0, 10, 20, 30s after start, got %d calls", len(ts)-1)
		}
	})
}

func TestReconcileTimeoutBoundsEachCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, time.Hour)
		var took atomic.Int64
		r := &recorder{fn: func(ctx context.Context, key string, n int) (Result, error) {
			start := time.Now()
			<-ctx.Done()
			took.Store(int64(time.Since(start)))
			return Result{}, TerminalError(ctx.Err())
		}}
		h.m.Add(Options{Name: nameTrust, Reconciler: r, Resync: keys("a")})
		out, err := h.m.RunOnce(t.Context())
		if err != nil || len(out) != 1 || !errors.Is(out[0].Err, context.DeadlineExceeded) {
			t.Fatalf("want the key to fail on its deadline, got %+v %v", out, err)
		}
		if got := time.Duration(took.Load()); got != time.Minute {
			t.Errorf("reconcile was cancelled after %s, want the 1m ReconcileTimeout", got)
		}
	})
}
