package leader

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-zookeeper/zk"
)

// Gauge is the registry_operator_leader metric (1 leading, 0 otherwise).
type Gauge interface{ Set(float64) }

// Config is what an Elector needs.
type Config struct {
	// Servers are ZooKeeper host:port addresses.
	Servers []string
	// Path is the election znode; candidates are its children.
	Path string
	// SessionTimeout is asked of ZooKeeper, which may clamp it to its
	// min/maxSessionTimeout (2 and 20 ticks by default).
	SessionTimeout time.Duration
	Self           Identity
	// Digest, when set, is added to the session; the znodes the elector
	// creates are then writable by its holders only (anyone may read who
	// leads), and the PKI store needs it.
	Digest  *Digest
	Log     logr.Logger
	Leading Gauge // may be nil
	// Dialer replaces net.DialTimeout; tests use it to cut connections.
	Dialer zk.Dialer
}

// Elector takes part in one election. Leadership is a term: it starts when
// this instance's candidate znode is the lowest of the election's children
// under a live session, and ends the moment that session is suspended,
// expires, or the znode goes away.
//
// Fencing: ZooKeeper only elects another instance after this session has
// expired on the server, i.e. after the server heard nothing from us for
// the session timeout. The client declares the connection lost after 2/3
// of it without a reply (at once when the server closes the socket), and
// the state callback fences synchronously, inside the client's connection
// loop, before it even tries to reconnect. So the fence func runs at least
// a third of the session timeout before any other instance can win. Fence
// must cancel the context of every in-flight reconcile; reconcilers pass
// that context to every blocking call and check it before every write, so
// none starts a write after the fence. Writes to the shared PKI store are
// fenced by ZooKeeper itself as well (see PKIStore).
type Elector struct {
	cfg    Config
	conn   *zk.Conn
	prefix string // names this instance's candidate znode
	wake   chan struct{}
	authMu sync.Mutex
	authed bool

	mu          sync.Mutex
	state       zk.State
	hasSession  bool
	sessionGen  uint64 // counts sessions (re)established
	leading     bool
	fence       func()
	node        string // own candidate znode; "" when none
	nodeSession int64
	leader      Identity
	ready       bool
	reason      string
}

var (
	errSuspended = errors.New("ZooKeeper session suspended")
	errNodeGone  = errors.New("own candidate znode is gone")
)

// New connects (in the background: an unreachable ZooKeeper is waited
// for by Run, not an error here).
func New(cfg Config) (*Elector, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("leader election needs at least one ZooKeeper server (spec.leaderElection.zookeeper)")
	}
	if !strings.HasPrefix(cfg.Path, "/") || cfg.Path == "/" {
		return nil, fmt.Errorf("election path %q must be an absolute znode path below / (spec.leaderElection.path)", cfg.Path)
	}
	if cfg.SessionTimeout <= 0 {
		return nil, errors.New("session timeout must be positive (spec.leaderElection.sessionTimeout)")
	}
	var guid [16]byte
	if _, err := rand.Read(guid[:]); err != nil {
		return nil, fmt.Errorf("random candidate name: %w", err)
	}
	e := &Elector{
		cfg:    cfg,
		prefix: "_c_" + hex.EncodeToString(guid[:]) + "-n_",
		wake:   make(chan struct{}, 1),
		reason: "connecting to ZooKeeper " + strings.Join(cfg.Servers, ","),
	}
	dial := cfg.Dialer
	if dial == nil {
		dial = net.DialTimeout
	}
	conn, _, err := zk.Connect(cfg.Servers, cfg.SessionTimeout, zk.WithDialer(dial),
		zk.WithLogger(zkLogger{cfg.Log.WithName("zk")}), zk.WithEventCallback(e.onEvent))
	if err != nil {
		return nil, fmt.Errorf("ZooKeeper client for %s: %w", strings.Join(cfg.Servers, ","), err)
	}
	e.conn = conn
	e.setGauge(0)
	return e, nil
}

// Close ends the session (its ephemeral znodes go with it). Call after Run
// returned and after the last use of a PKIStore built on this elector.
func (e *Elector) Close() { e.conn.Close() }

// IsLeader reports whether this instance leads right now.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// Leader is the last known leader (zero when none is known).
func (e *Elector) Leader() Identity {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Ready reports whether this instance holds a session and stands in the
// election (as leader or follower); Reason says why not, or what it does.
func (e *Elector) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ready
}

// Reason explains Ready.
func (e *Elector) Reason() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reason
}

// onEvent runs inside the client's connection loop for every session state
// change. It fences here, synchronously, so nothing the Run loop does can
// delay it. It must not call the client (that would deadlock the loop).
func (e *Elector) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	e.mu.Lock()
	e.state = ev.State
	switch ev.State {
	case zk.StateHasSession:
		e.hasSession = true
		e.sessionGen++
	case zk.StateExpired:
		e.hasSession = false
		e.node = "" // ephemeral: deleted with the session
	default:
		e.hasSession = false
	}
	if !e.hasSession {
		e.stopLeadingLocked()
		e.ready = false
		e.reason = fmt.Sprintf("no ZooKeeper session with %s (%s): not reconciling until one is established and leadership is won",
			strings.Join(e.cfg.Servers, ","), ev.State)
	}
	e.mu.Unlock()
	e.poke()
}

func (e *Elector) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// stopLeadingLocked ends the term: metric 0 and fence, once.
func (e *Elector) stopLeadingLocked() {
	if !e.leading {
		return
	}
	e.leading = false
	e.setGauge(0)
	if e.fence != nil {
		e.fence()
	}
}

func (e *Elector) stepDown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopLeadingLocked()
}

func (e *Elector) setGauge(v float64) {
	if e.cfg.Leading != nil {
		e.cfg.Leading.Set(v)
	}
}

func (e *Elector) setReady(ok bool, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ready, e.reason = ok, reason
}

// sameSession reports whether the session gen is still the live one.
func (e *Elector) sameSession(gen uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hasSession && e.sessionGen == gen
}

// term returns the own candidate znode while this instance leads: the
// fence token of the PKI store.
func (e *Elector) term() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.node, e.leading && e.node != ""
}

// ensureAuth adds the digest credential once; the client re-sends it on
// every reconnect, before any other request.
func (e *Elector) ensureAuth() error {
	if e.cfg.Digest == nil {
		return nil
	}
	e.authMu.Lock()
	defer e.authMu.Unlock()
	if e.authed {
		return nil
	}
	if err := e.conn.AddAuth("digest", e.cfg.Digest.auth()); err != nil {
		return fmt.Errorf("add ZooKeeper digest credential of user %s: %w", e.cfg.Digest.User, err)
	}
	e.authed = true
	return nil
}

// ensurePath creates p and its parents where missing, guarded by acl.
func (e *Elector) ensurePath(p string, acl []zk.ACL) error {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := ""
	for _, part := range parts {
		cur += "/" + part
		ok, _, err := e.conn.Exists(cur)
		if err != nil {
			return fmt.Errorf("check znode %s: %w", cur, err)
		}
		if ok {
			continue
		}
		if _, err := e.conn.Create(cur, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create znode %s: %w (the digest credential needs create permission on its parent)", cur, err)
		}
	}
	return nil
}
