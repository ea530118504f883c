package nodes

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// freeze stops every process of d (sshd and its sessions) until the test
// ends: nothing sent to it is answered.
func freeze(t *testing.T, d *testSSHD) {
	t.Helper()
	frozen := d.descendants(t, "")
	for _, pid := range frozen {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	t.Cleanup(func() {
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
}

// The executor's one keepalive loop serves every connection: it closes an
// idle one whose peer stopped answering, and in the same sweeps leaves
// alone one that passes keep using, although its peer does not answer
// either.
func TestKeepAliveLoopCoversEveryConnection(t *testing.T) {
	idle, busy := startSSHD(t, sshdOptions{}), startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	idleCfg, busyCfg := idle.config("root", false), busy.config("root", false)
	idleCfg.KeepAlive, busyCfg.KeepAlive = 500*time.Millisecond, 500*time.Millisecond
	connect(t, e, idleCfg, idle.Addr)
	connect(t, e, busyCfg, busy.Addr)
	idleClient, busyClient := e.state(idle.Addr).client, e.state(busy.Addr).client
	freeze(t, idle)
	freeze(t, busy)

	ctx, cancel := context.WithCancel(context.Background())
	passes := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			// An empty pass sends nothing: it only marks the connection used.
			if err := e.Do(ctx, busyCfg, busy.Addr, func(context.Context, Conn) error { return nil }); err != nil {
				passes <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		passes <- nil
	}()
	deadline := time.Now().Add(60 * time.Second)
	for idleClient.alive() {
		if time.Now().After(deadline) {
			t.Fatal("an idle connection whose peer does not answer was not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A probe of the busy connection, sent in the sweep that probed the
	// idle one, would have gone unanswered just as long: it would be closed
	// by now.
	time.Sleep(time.Second)
	cancel()
	if err := <-passes; err != nil {
		t.Fatalf("pass on the busy connection: %v", err)
	}
	if !busyClient.alive() {
		t.Fatal("a connection passes kept using was probed (and closed)")
	}
}

// What one kept SFTP connection costs in goroutines (see
// BenchmarkKeptConnections for the bytes): x/crypto/ssh's three for any
// connection (packet reader, key exchange, channel multiplexer) and
// nothing else. The SFTP client has none (requests are written and
// answered in the caller); no keepalive goroutine, nothing answering the
// node's requests (the executor's one loop does both), no ssh.Client
// handlers, no
// ssh.Session reader or stderr copier per node.
func TestKeptConnectionGoroutines(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	// The keepalive loop is the executor's, started with its first
	// connection: make it run before counting.
	other := startSSHD(t, sshdOptions{})
	connect(t, e, other.config("root", false), other.Addr)
	before := settledGoroutines()
	connect(t, e, cfg, d.Addr)
	if err := e.Do(context.Background(), cfg, d.Addr, keptPass(4096)); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.state(d.Addr).conn.(*sftpConn); !ok {
		t.Fatalf("connection uses %T, want the SFTP channel", e.state(d.Addr).conn)
	}
	const want = 3
	if n := settledGoroutines() - before; n > want {
		buf := make([]byte, 1<<20)
		t.Fatalf("one kept connection holds %d goroutines, want at most %d:\n%s", n, want, buf[:runtime.Stack(buf, true)])
	}
}

// settledGoroutines counts goroutines once short-lived ones (a finished
// pass's timers and copiers) have had time to end.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// A closed connection leaves the keepalive loop's set at once, not at the
// next sweep: `run --once` releases connections by the thousand, and each
// one held there would keep its buffers.
func TestKeepAliveForgetsClosedConnections(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	connect(t, e, d.config("root", false), d.Addr)
	count := func() int {
		e.keepAlive.mu.Lock()
		defer e.keepAlive.mu.Unlock()
		return len(e.keepAlive.clients)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d connections in the keepalive set, want the 1 kept", n)
	}
	e.Forget(d.Addr)
	if n := count(); n != 0 {
		t.Fatalf("%d connections in the keepalive set after the only one was closed, want 0", n)
	}
}
