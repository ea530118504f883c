package nodes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
)

// Per-node backoff after a failed connection: one dead node is tried again
// after 2s, 4s, ... up to 5 minutes, and never holds up the others.
const (
	backoffBase = 2 * time.Second
	backoffMax  = 5 * time.Minute
)

// Executor runs node operations over SSH. It keeps one client per node
// across passes and bounds how many connections are being set up at once
// (nodes.ssh.concurrency): setting one up is what costs, on the node (sshd
// forks and runs a shell) and here. Work over a kept connection takes no
// slot; the reconcilers' worker counts bound it. It is safe for concurrent
// use by several reconcilers.
type Executor struct {
	metrics *metrics.Metrics
	clock   clock.Clock
	log     logr.Logger
	keys    *hostKeys
	signers signerCache

	semMu sync.Mutex
	sem   chan struct{}

	mu    sync.Mutex
	nodes map[string]*nodeState
	// checked: known_hosts files already checked for acceptNew; guarded by mu.
	checked map[string]bool

	// release, when set, closes a node's connection after uses() passes
	// have run on it, or after it has sat idle for idle (see ReleaseAfter).
	release *releasePolicy

	keepAlive keepAlive
}

type releasePolicy struct {
	uses func() int
	idle time.Duration
}

// nodeState is one node's client and failure record. Its mutex serialises
// dialling, so reconcilers working on the same node share one connection.
type nodeState struct {
	mu       sync.Mutex
	client   *client
	conn     Conn
	failures int
	retryAt  time.Time
	lastErr  error
	// For ReleaseAfter: passes finished and in flight on client, and the
	// idle timer.
	used, active int
	idleTimer    clock.Timer
}

// NewExecutor returns an executor with no connections yet.
func NewExecutor(m *metrics.Metrics, clk clock.Clock, log logr.Logger) *Executor {
	return &Executor{metrics: m, clock: clk, log: log, keys: newHostKeys(), nodes: map[string]*nodeState{},
		checked: map[string]bool{}}
}

// Do runs fn against node (an address: "host" or "host:port") with a live
// connection, dialling within the global bound when there is none.
// Connection failures come back as *ConnectError (and put the node into
// backoff), refused host keys as *HostKeyError (counted; never retried as
// transient); anything fn returns passes through.
//
// Taking a slot only to dial also keeps reconcilers visiting the same node
// in step: the second one reuses the connection at once instead of queueing
// behind other nodes' dials, so `run --once` can hang up after both.
func (e *Executor) Do(ctx context.Context, cfg Config, node string, fn func(ctx context.Context, c Conn) error) error {
	ns := e.state(node)
	ns.mu.Lock()
	conn, err := e.connect(ctx, cfg, node, ns)
	if err == nil {
		ns.active++
		if ns.idleTimer != nil {
			ns.idleTimer.Stop()
		}
	}
	cl := ns.client
	ns.mu.Unlock()
	if err != nil {
		return err
	}
	cl.touch()
	if s, ok := conn.(*sftpConn); ok {
		// The pass's own view: its quick checks go out as one batch.
		s = s.startPass(ctx)
		err = fn(ctx, s)
		s.endPass()
	} else {
		err = fn(ctx, conn)
	}
	cl.touch()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if IsUnreachable(err) || errors.Is(err, ErrTimeout) {
		e.fail(ns, err)
	}
	if ns.client == cl {
		ns.active--
		ns.used++
		e.maybeRelease(ns, cl)
	}
	return err
}

// ReleaseAfter makes the executor close a node's connection once uses()
// passes have finished on it, or once it has sat idle for idle. `run
// --once` visits each node once per node reconciler and never again:
// keeping every connection to the end would hold one sshd session (and its
// processes and buffers on both sides) per node for the whole run. A later
// pass on a released node simply dials again. Call it before any Do.
func (e *Executor) ReleaseAfter(uses func() int, idle time.Duration) {
	e.release = &releasePolicy{uses: uses, idle: idle}
}

// maybeRelease applies the release policy after a pass. Called with ns.mu
// held.
func (e *Executor) maybeRelease(ns *nodeState, cl *client) {
	if cl == nil || ns.active > 0 {
		return
	}
	if cl.acceptedNew {
		// The key was taken on trust for this connection; a new one
		// checks it against the record, and passes on it can then
		// trust the agent's identity (AcceptedOnFirstUse).
		e.drop(ns)
		return
	}
	if e.release == nil {
		return
	}
	if ns.used >= e.release.uses() {
		e.drop(ns)
		return
	}
	after, ok := e.clock.(clock.WithDelayedExecution)
	if !ok || e.release.idle <= 0 {
		return
	}
	ns.idleTimer = after.AfterFunc(e.release.idle, func() {
		ns.mu.Lock()
		defer ns.mu.Unlock()
		if ns.client == cl && ns.active == 0 {
			e.drop(ns)
		}
	})
}

// drop closes the node's client without counting a failure. Called with
// ns.mu held.
func (e *Executor) drop(ns *nodeState) {
	if ns.client != nil {
		ns.client.close()
		ns.client, ns.conn = nil, nil
	}
	ns.used, ns.active = 0, 0
}

// connect returns the node's connection, dialling when there is none, the
// old one died, or any SSH setting changed (settings change rarely, and a
// client's settings never change under it). Called with ns.mu held.
func (e *Executor) connect(ctx context.Context, cfg Config, node string, ns *nodeState) (Conn, error) {
	if c := ns.client; c != nil {
		c.poll() // notices a connection that ended since the loop's last tick
		if c.alive() && c.cfg == cfg {
			return ns.conn, nil
		}
		c.close()
		ns.client, ns.conn = nil, nil
	}
	if now := e.clock.Now(); now.Before(ns.retryAt) {
		return nil, &ConnectError{Node: node, Err: ns.lastErr, Backoff: ns.retryAt}
	}
	e.checkKnownHosts(cfg)
	release, err := e.acquire(ctx, cfg.concurrency())
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := dial(ctx, e.keys, &e.signers, cfg, node, func() { e.metrics.SSHSessions.Inc() }, e.keepAlive.remove)
	if err != nil {
		var he *HostKeyError
		if errors.As(err, &he) {
			if he.Mismatch || he.Revoked {
				e.metrics.HostKeyMismatch.WithLabelValues(node).Inc()
			}
			e.log.Error(err, "host key refused", "node", node, "mismatch", he.Mismatch, "revoked", he.Revoked,
				"presented", he.Got)
			return nil, err
		}
		e.fail(ns, err)
		return nil, err
	}
	sc, err := c.startSFTP(ctx)
	if err != nil {
		c.close()
		if IsUnreachable(err) || errors.Is(err, ErrTimeout) {
			e.fail(ns, err)
		}
		return nil, err
	}
	// Only now, with the kept channel's requests in place: the loop reads
	// a client's queues without its lock, so they must not change once
	// it has the client. What the node sends meanwhile waits in
	// x/crypto's buffers.
	e.keepAlive.add(c)
	ex := &execConn{c: c}
	ns.conn = ex
	if sc != nil {
		c.setSFTP(sc)
		ns.conn = newSFTPConn(ex, sc, e.clock.Now)
	} else {
		e.log.Info("node has no sftp-server; using one exec session per operation", "node", node)
	}
	ns.client, ns.failures, ns.retryAt, ns.lastErr = c, 0, time.Time{}, nil
	ns.used, ns.active = 0, 0
	return ns.conn, nil
}

// checkKnownHosts says once per file, on the first dial, when acceptNew
// cannot work because known_hosts cannot be written: known agents still
// connect, but every new one fails until the file is made writable or its
// key is added by hand.
func (e *Executor) checkKnownHosts(cfg Config) {
	if cfg.HostKeyPolicy != v1alpha1.HostKeyAcceptNew {
		return
	}
	e.mu.Lock()
	done := e.checked[cfg.KnownHostsFile]
	e.checked[cfg.KnownHostsFile] = true
	e.mu.Unlock()
	if done {
		return
	}
	if err := knownHostsWritable(cfg.KnownHostsFile); err != nil {
		e.log.Error(err, "known_hosts is read-only: new agents cannot be accepted (hostKeyPolicy acceptNew); "+
			"mount it writable or add new agents' keys by hand", "path", cfg.KnownHostsFile)
	}
}

// fail records a connection failure and schedules the next attempt.
func (e *Executor) fail(ns *nodeState, err error) {
	if ns.client != nil {
		ns.client.close()
		ns.client, ns.conn = nil, nil
	}
	d := backoffBase << min(ns.failures, 10)
	ns.failures++
	ns.retryAt = e.clock.Now().Add(min(d, backoffMax))
	ns.lastErr = err
}

func (e *Executor) state(node string) *nodeState {
	e.mu.Lock()
	defer e.mu.Unlock()
	ns, ok := e.nodes[node]
	if !ok {
		ns = &nodeState{}
		e.nodes[node] = ns
	}
	return ns
}

// acquire takes one of n global dialling slots. A changed n takes effect for new
// callers; holders return their slot to the pool they took it from.
func (e *Executor) acquire(ctx context.Context, n int) (func(), error) {
	e.semMu.Lock()
	if e.sem == nil || cap(e.sem) != n {
		e.sem = make(chan struct{}, n)
	}
	sem := e.sem
	e.semMu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free SSH slot (nodes.ssh.concurrency=%d): %w", n, ctx.Err())
	}
}

// Forget closes the connection of a node that left the fleet.
func (e *Executor) Forget(node string) {
	e.mu.Lock()
	ns, ok := e.nodes[node]
	delete(e.nodes, node)
	e.mu.Unlock()
	if ok {
		ns.mu.Lock()
		if ns.client != nil {
			ns.client.close()
		}
		ns.mu.Unlock()
	}
}

// Close closes every connection.
func (e *Executor) Close() {
	e.keepAlive.close()
	e.mu.Lock()
	nodes := e.nodes
	e.nodes = map[string]*nodeState{}
	e.mu.Unlock()
	for _, ns := range nodes {
		ns.mu.Lock()
		if ns.client != nil {
			ns.client.close()
		}
		ns.mu.Unlock()
	}
}
