package leader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSession = 4 * time.Second

type gauge struct{ bits atomic.Uint64 }

func (g *gauge) Set(v float64)  { g.bits.Store(math.Float64bits(v)) }
func (g *gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// terms records every leading run of every instance, and any moment two
// ran at once: the runs span more than the time an instance may write.
type terms struct {
	mu       sync.Mutex
	active   map[string]time.Time
	done     []string
	overlaps []string
}

// newTerms checks for overlaps when the test ends, also after a Fatal.
func newTerms(t *testing.T) *terms {
	r := &terms{active: map[string]time.Time{}}
	t.Cleanup(func() { r.check(t) })
	return r
}

func (r *terms) lead(who string) func(context.Context) error {
	return func(ctx context.Context) error {
		r.begin(who)
		defer r.end(who)
		<-ctx.Done()
		return ctx.Err()
	}
}

func (r *terms) begin(who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for other, since := range r.active {
		r.overlaps = append(r.overlaps, fmt.Sprintf("%s began leading at %s while %s led since %s",
			who, now.Format("15:04:05.000"), other, since.Format("15:04:05.000")))
	}
	r.active[who] = now
}

func (r *terms) end(who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, fmt.Sprintf("%s led %s - %s", who, r.active[who].Format("15:04:05.000"),
		time.Now().Format("15:04:05.000")))
	delete(r.active, who)
}

// started counts runs begun so far.
func (r *terms) started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.done) + len(r.active)
}

func (r *terms) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.overlaps) > 0 {
		t.Errorf("two leaders at once:\n%s\nterms:\n%s", strings.Join(r.overlaps, "\n"), strings.Join(r.done, "\n"))
	}
}

// inst is one elector running in this process.
type inst struct {
	name   string
	e      *Elector
	g      *gauge
	fences atomic.Int32
	// fencedAt is the time of the first fence.
	fencedAt atomic.Pointer[time.Time]
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

type instOpt func(*Config)

func startInst(t *testing.T, name string, servers []string, path string, rec *terms, opts ...instOpt) *inst {
	t.Helper()
	in := &inst{name: name, g: &gauge{}, done: make(chan error, 1)}
	cfg := Config{Servers: servers, Path: path, SessionTimeout: testSession,
		Self: Identity{Host: name, PID: 1000 + len(name), Version: "test"},
		Log:  testLog(t).WithName(name), Leading: in.g}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in.e = e
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() {
		in.done <- e.Run(ctx, rec.lead(name), func() {
			if in.fences.Add(1) == 1 {
				now := time.Now()
				in.fencedAt.Store(&now)
			}
		})
	}()
	t.Cleanup(func() { in.stop(t); e.Close() })
	return in
}

// stop is what SIGTERM does: cancel Run and wait for it.
func (in *inst) stop(t *testing.T) {
	in.stopOnce.Do(func() {
		in.cancel()
		if err := <-in.done; err != nil {
			t.Errorf("%s: Run: %v", in.name, err)
		}
	})
}

func (in *inst) following() bool {
	return in.e.Ready() && !in.e.IsLeader() && strings.HasPrefix(in.e.Reason(), "following")
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cutter simulates a network partition between one client and ZooKeeper:
// while cut, bytes are dropped both ways (no reset, as with a dead link)
// and new connections fail.
type cutter struct{ cut atomic.Bool }

func (c *cutter) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errors.New("link cut by test")
	}
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: conn, c: c}, nil
}

type cutConn struct {
	net.Conn
	c *cutter
}

func (cc *cutConn) Write(p []byte) (int, error) {
	if cc.c.cut.Load() {
		return len(p), nil
	}
	return cc.Conn.Write(p)
}

func (cc *cutConn) Read(p []byte) (int, error) {
	for {
		n, err := cc.Conn.Read(p)
		if err != nil || !cc.c.cut.Load() {
			return n, err
		}
	}
}
