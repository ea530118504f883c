package nodes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

// sftpServerPaths are where distributions install OpenSSH's sftp-server:
// Debian/Ubuntu, RHEL/CentOS/Fedora, Arch and others.
var sftpServerPaths = []string{
	"/usr/lib/openssh/sftp-server",
	"/usr/libexec/openssh/sftp-server",
	"/usr/lib/ssh/sftp-server",
	"/usr/libexec/sftp-server",
}

// client is one node's connection: the SSH client and, when the node has an
// sftp-server, one SFTP channel kept open across passes.
type client struct {
	node    string
	cfg     Config
	ssh     ssh.Conn
	mu      sync.Mutex
	sftp    *sftp.Client  // nil: exec fallback; guarded by mu
	counter func()        // counts an opened session
	closed  func(*client) // called once the connection is closed
	// acceptedNew: the host key was recorded on first use (acceptNew) when
	// this connection was set up, not checked against one on record.
	acceptedNew bool

	closeOnce sync.Once
	done      chan struct{} // closed when the connection is gone
	// timedOut: a request hung past commandTimeout and the connection was
	// closed to end it. Requests of other passes that were in flight on it
	// then fail too, and say so instead of "connection lost".
	timedOut atomic.Bool

	// lastUsed (unix nanoseconds) is when a pass last used the client: a
	// connection that just carried a pass needs no keepalive probe.
	lastUsed atomic.Int64
	// probing: a keepalive probe is in flight.
	probing atomic.Bool
	// keepAliveEvery is cfg.KeepAlive, fixed at dial for the executor's
	// loop to read.
	keepAliveEvery time.Duration

	// What the node sends unasked, taken by poll; pollMu serialises polls.
	pollMu sync.Mutex
	reqs   <-chan *ssh.Request
	chans  <-chan ssh.NewChannel
	// chanReqs are the kept SFTP channel's requests, set before the
	// keepalive loop has the client and never changed after (queued reads
	// them without the lock); chanReqsClosed once x/crypto closed them.
	chanReqs       <-chan *ssh.Request
	chanReqsClosed atomic.Bool
	// answering: poll's answers are being written.
	answering atomic.Bool
}

func (c *client) touch() { c.lastUsed.Store(time.Now().UnixNano()) }

// dialAddr splits a node address ("host" or "host:port") into what to dial.
func dialAddr(node string, port int) string {
	if h, p, err := net.SplitHostPort(node); err == nil {
		return net.JoinHostPort(h, p)
	}
	return net.JoinHostPort(strings.Trim(node, "[]"), strconv.Itoa(port))
}

// dial connects and logs in. Both the TCP connect and the SSH handshake are
// bounded: x/crypto's ClientConfig.Timeout covers only the connect, and a
// peer that accepts but never speaks would otherwise hang the pass forever.
func dial(ctx context.Context, keys *hostKeys, signers *signerCache, cfg Config, node string, counter func(), closed func(*client)) (*client, error) {
	addr := dialAddr(node, cfg.Port)
	signer, err := signers.load(cfg.PrivateKeyFile)
	if err != nil {
		return nil, err
	}
	var acceptedNew atomic.Bool
	cb, algos, err := keys.load(cfg, node, addr, &acceptedNew)
	if err != nil {
		return nil, err
	}
	timeout := cfg.connectTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &ConnectError{Node: node, Err: err}
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	})
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		var he *HostKeyError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, &ConnectError{Node: node, Err: fmt.Errorf("ssh handshake with %s as %s: %w", addr, cfg.User, err)}
	}
	_ = conn.SetDeadline(time.Time{})
	c := &client{node: node, cfg: cfg, ssh: sc, counter: counter, closed: closed, done: make(chan struct{}),
		acceptedNew: acceptedNew.Load(), keepAliveEvery: cfg.KeepAlive, reqs: reqs, chans: chans}
	return c, nil
}

// signerCache holds the signer parsed from the private key file's current
// contents. Every dial reads the file, so a replaced key is used from the
// next dial on; it is parsed again only when its bytes changed. A kept
// connection holds its signer (x/crypto keeps the client config), and
// crypto keeps a precomputed form of each private key object it signed
// with: one signer for the fleet, not one per connection, saves about
// 0.8 KB per kept node.
type signerCache struct {
	mu     sync.Mutex
	file   string
	sum    [sha256.Size]byte // of the key file's bytes; the bytes are not kept
	signer ssh.Signer
}

func (sc *signerCache) load(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read SSH private key (nodes.ssh.privateKeyFile): %w", err)
	}
	defer clear(b) // the key's bytes live on only in the parsed signer
	sum := sha256.Sum256(b)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.signer != nil && sc.file == file && sc.sum == sum {
		return sc.signer, nil
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse SSH private key %s (it must be unencrypted): %w", file, err)
	}
	sc.file, sc.sum, sc.signer = file, sum, s
	return s, nil
}

// closeTimedOut closes the connection because a request on it hung.
func (c *client) closeTimedOut() {
	c.timedOut.Store(true)
	c.close()
}

// close tears the connection down; every blocked operation on it returns.
func (c *client) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		// The transport first: it ends a request blocked in a read.
		c.ssh.Close()
		c.mu.Lock()
		sc := c.sftp
		c.mu.Unlock()
		if sc != nil {
			sc.Close()
		}
		c.closed(c)
	})
}

func (c *client) setSFTP(sc *sftp.Client) {
	c.mu.Lock()
	c.sftp = sc
	c.mu.Unlock()
	if !c.alive() {
		sc.Close() // closed while starting
	}
}

func (c *client) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// probe sends one keepalive request and closes the connection when it
// fails or goes unanswered for connectTimeout (the close unblocks the
// request). The caller has set probing; probe clears it.
func (c *client) probe() {
	defer c.probing.Store(false)
	t := time.AfterFunc(c.cfg.connectTimeout(), c.close)
	_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
	if t.Stop() && err != nil {
		c.close()
	}
}

// run executes script with args on the node, through sudo -n when
// configured, feeding stdin. The command is bounded by commandTimeout, by
// ctx and by maxOutput bytes on stdout and on stderr; on any of them, the
// session is closed, and if the node does not answer that, the whole
// connection, so no goroutine stays behind.
func (c *client) run(ctx context.Context, stdin []byte, script string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.commandTimeout())
	defer cancel()
	ctx, tooMuch := context.WithCancelCause(ctx)
	defer tooMuch(nil)
	ch, reqs, err := c.ssh.OpenChannel("session", nil)
	if err != nil {
		c.close()
		return nil, &ConnectError{Node: c.node, Err: fmt.Errorf("open session: %w", err)}
	}
	c.counter()
	defer ch.Close()
	stdout := &cappedBuffer{limit: maxOutput, stream: "stdout", over: tooMuch}
	stderr := &cappedBuffer{limit: maxOutput, stream: "stderr", over: tooMuch}
	if err := startExec(ch, command(c.cfg.Sudo, script, args...)); err != nil {
		return nil, c.commandError(err, "")
	}
	done := make(chan error, 1)
	go func() { done <- execute(ch, reqs, stdin, stdout, stderr) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_, _ = ch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"KILL"}))
		ch.Close()
		t := time.NewTimer(2 * time.Second)
		select {
		case <-done:
		case <-t.C:
			c.close()
			<-done
		}
		t.Stop()
		if cause := context.Cause(ctx); errors.Is(cause, ErrOutputTooLarge) {
			return nil, fmt.Errorf("node %s: command killed: %w", c.node, cause)
		}
		return nil, fmt.Errorf("node %s: command: %w", c.node, timeoutErr(ctx))
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrOutputTooLarge) {
		return nil, fmt.Errorf("node %s: command: %w", c.node, cause) // ended as the cap was hit
	}
	if err != nil {
		return stdout.Bytes(), c.commandError(err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func timeoutErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}

// ExitError is a remote command that ran and failed.
type ExitError struct {
	Node   string
	Status int
	Stderr string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("node %s: command exited %d: %s", e.Node, e.Status, e.Stderr)
}

func (c *client) commandError(err error, stderr string) error {
	stderr = strings.TrimSpace(stderr)
	if len(stderr) > 512 {
		stderr = stderr[:512] + "..."
	}
	if sudoRefused(stderr) {
		return fmt.Errorf("node %s: %w: %s", c.node, ErrSudoRefused, stderr)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return &ExitError{Node: c.node, Status: ee.status, Stderr: stderr}
	}
	c.close() // the channel broke rather than the command failing
	return &ConnectError{Node: c.node, Err: fmt.Errorf("command: %w", err)}
}

func sudoRefused(stderr string) bool {
	return strings.HasPrefix(stderr, "sudo:") &&
		(strings.Contains(stderr, "password is required") || strings.Contains(stderr, "not allowed") ||
			strings.Contains(stderr, "may not run") || strings.Contains(stderr, "not in the sudoers"))
}

// syncBuffer is a bytes.Buffer safe for the session's stderr copier and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4096 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
