package nodes

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshd's own keepalive (ClientAliveInterval 1, ClientAliveCountMax 2) hangs
// up on a client that leaves three requests in a row unanswered. The
// executor's loop answers them: the connection outlives many intervals
// with no pass and no probe of ours on it.
func TestSSHDKeepAliveRequestsAnswered(t *testing.T) {
	d := startSSHD(t, sshdOptions{Extra: []string{"ClientAliveInterval 1", "ClientAliveCountMax 2"}})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	cfg.KeepAlive = 0 // no probes of ours: they would spare sshd its own
	connect(t, e, cfg, d.Addr)
	c := e.state(d.Addr).client
	deadline := time.Now().Add(8 * time.Second) // eight intervals, sshd gives up after three
	for time.Now().Before(deadline) {
		if !c.alive() {
			t.Fatal("sshd closed the connection: its keepalive requests went unanswered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := e.Do(context.Background(), cfg, d.Addr, keptPass(640)); err != nil {
		t.Fatal(err)
	}
	if e.state(d.Addr).client != c {
		t.Fatal("the pass needed a new connection: the kept one was lost")
	}
}

// testPeer is an in-process SSH server on loopback that, unlike sshd, can
// open channels and send requests to the operator at will.
type testPeer struct {
	cfg   Config
	addr  string
	conns chan *ssh.ServerConn
}

func startTestPeer(t *testing.T) *testPeer {
	t.Helper()
	dir := t.TempDir()
	clientPub := writeKey(t, filepath.Join(dir, "id_ed25519"))
	_, hostPriv, err := ed25519.GenerateKey(nil)
	must(t, err)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	must(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { l.Close() })
	p := &testPeer{addr: l.Addr().String(), conns: make(chan *ssh.ServerConn, 1)}
	known := filepath.Join(dir, "known_hosts")
	must(t, os.WriteFile(known, []byte(knownhosts.Line([]string{knownhosts.Normalize(p.addr)}, hostSigner.PublicKey())+"\n"), 0o600))
	port, _ := strconv.Atoi(p.addr[len("127.0.0.1:"):])
	p.cfg = Config{User: "root", Port: port, PrivateKeyFile: filepath.Join(dir, "id_ed25519"), KnownHostsFile: known,
		HostKeyPolicy: "strict", ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second}
	sc := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) != string(clientPub.Marshal()) {
			return nil, errors.New("unknown key")
		}
		return nil, nil
	}}
	sc.AddHostKey(hostSigner)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		conn, chans, reqs, err := ssh.NewServerConn(nc, sc)
		if err != nil {
			nc.Close()
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for ch := range chans {
				_ = ch.Reject(ssh.Prohibited, "test peer")
			}
		}()
		p.conns <- conn
	}()
	return p
}

// dialPeer connects to p as the executor does and registers the client with
// a keepalive loop of its own; it returns the client and the server's end.
func dialPeer(t *testing.T, p *testPeer) (*client, *ssh.ServerConn) {
	t.Helper()
	k := &keepAlive{}
	t.Cleanup(k.close)
	c, err := dial(context.Background(), newHostKeys(), &signerCache{}, p.cfg, p.addr, func() {}, k.remove)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	k.add(c)
	select {
	case sc := <-p.conns:
		t.Cleanup(func() { sc.Close() })
		return c, sc
	case <-time.After(10 * time.Second):
		t.Fatal("the test peer did not see the connection")
		return nil, nil
	}
}

// A channel the node opens is rejected, and global requests that want an
// answer get one (a refusal), also after a burst of requests that want
// none, more than x/crypto buffers.
func TestNodeInitiatedChannelsAndRequestsRefused(t *testing.T) {
	c, sc := dialPeer(t, startTestPeer(t))
	for i := range 4 * chanSizeX {
		if _, _, err := sc.SendRequest("hostkeys-00@openssh.com", false, nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for i := range 3 {
		var ok bool
		err := within(t, func() (err error) { ok, _, err = sc.SendRequest("keepalive@openssh.com", true, nil); return err })
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if ok {
			t.Fatalf("request %d was accepted, want it refused", i)
		}
	}
	for i := range 3 {
		var ch ssh.Channel
		err := within(t, func() (err error) { ch, _, err = sc.OpenChannel("forwarded-tcpip", nil); return err })
		if err == nil {
			ch.Close()
			t.Fatalf("channel %d was accepted, want it rejected", i)
		}
		var oe *ssh.OpenChannelError
		if !errors.As(err, &oe) || oe.Reason != ssh.Prohibited {
			t.Fatalf("channel %d: %v, want a rejection (administratively prohibited)", i, err)
		}
	}
	if !c.alive() {
		t.Fatal("the connection was closed")
	}
}

// within runs fn, failing the test when it has not returned in 10 s: an
// unanswered request would otherwise hang it.
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the operator did not answer within 10s")
		return nil
	}
}

// chanSizeX is x/crypto/ssh's buffer of requests and channel opens per
// connection (its unexported chanSize).
const chanSizeX = 16

// A connection the node ends is noticed without a pass on it: the client
// closes itself and leaves the loop.
func TestEndedConnectionNoticed(t *testing.T) {
	c, sc := dialPeer(t, startTestPeer(t))
	sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.alive() {
		if time.Now().After(deadline) {
			t.Fatal("a connection the node closed still counts as alive")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
