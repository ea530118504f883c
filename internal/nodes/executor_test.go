package nodes

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/internal/metrics"
)

func newExecutor(t *testing.T) (*Executor, *metrics.Metrics, *clocktesting.FakeClock) {
	t.Helper()
	m := metrics.New(metrics.BuildInfo{})
	clk := clocktesting.NewFakeClock(time.Now())
	e := NewExecutor(m, clk, logr.Discard())
	t.Cleanup(e.Close)
	return e, m, clk
}

// connect runs one empty pass, so the executor holds a connection to node.
// The file and Run contract every connection meets is in nodestest
// (contract_test.go runs it over SFTP and the exec fallback).
func connect(t *testing.T, e *Executor, cfg Config, node string) {
	t.Helper()
	if err := e.Do(context.Background(), cfg, node, func(context.Context, Conn) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestExecutorSFTP(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, m, _ := newExecutor(t)
	cfg := d.config("root", false)
	connect(t, e, cfg, d.Addr)
	if _, ok := e.state(d.Addr).conn.(*sftpConn); !ok {
		t.Fatalf("connection uses %T, want the SFTP channel", e.state(d.Addr).conn)
	}

	// Steady state: more reads over the kept connection open no session,
	// so no process starts on the node.
	before := testutil.ToFloat64(m.SSHSessions)
	for range 3 {
		err := e.Do(context.Background(), cfg, d.Addr, func(ctx context.Context, c Conn) error {
			_, _, err := c.ReadFile(ctx, d.KnownHosts)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if after := testutil.ToFloat64(m.SSHSessions); after != before {
		t.Errorf("steady-state reads opened %v sessions, want 0", after-before)
	}
	if len(d.sftpServers(t)) != 1 {
		t.Errorf("sftp-server processes: %v, want exactly one", d.sftpServers(t))
	}
}

func TestExecutorExecFallback(t *testing.T) {
	d := startSSHD(t, sshdOptions{NoSFTPSubsystem: true})
	e, _, _ := newExecutor(t)
	connect(t, e, d.config("root", false), d.Addr)
	if _, ok := e.state(d.Addr).conn.(*execConn); !ok {
		t.Fatalf("connection uses %T, want exec fallback", e.state(d.Addr).conn)
	}
}

func TestExecutorSudo(t *testing.T) {
	d := startSSHD(t, sshdOptions{NoSFTPSubsystem: true}) // sudo starts sftp-server itself
	e, _, _ := newExecutor(t)
	ctx := context.Background()
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o700)) // only root may write here
	target := filepath.Join(dir, "sub", "f")

	err := e.Do(ctx, d.config(userSudo, true), d.Addr, func(ctx context.Context, c Conn) error {
		if _, ok := c.(*sftpConn); !ok {
			t.Errorf("sudo connection uses %T, want sftp-server started through sudo", c)
		}
		return c.WriteFile(ctx, target, []byte("x"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(target)
	must(t, err)
	if st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("file owned by uid %d, want root (written through sudo)", st.Sys().(*syscall.Stat_t).Uid)
	}

	done := make(chan error, 1)
	go func() {
		done <- e.Do(ctx, d.config(userNoSudo, true), d.Addr, func(ctx context.Context, c Conn) error { return nil })
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("sudo without a password rule hung instead of failing")
	}
	if !errors.Is(err, ErrSudoRefused) {
		t.Fatalf("got %v, want ErrSudoRefused", err)
	}
	if IsUnreachable(err) {
		t.Errorf("a sudo refusal is not an unreachable node: %v", err)
	}
}

func TestExecutorSudoExecFallback(t *testing.T) {
	d := startSSHD(t, sshdOptions{NoSFTPSubsystem: true})
	e, _, _ := newExecutor(t)
	cfg := d.config(userNoSudo, true)
	cfg.SFTPServer = "/nonexistent/sftp-server"
	err := e.Do(context.Background(), cfg, d.Addr, func(ctx context.Context, c Conn) error { return nil })
	if !errors.Is(err, ErrSudoRefused) {
		t.Fatalf("got %v, want ErrSudoRefused", err)
	}
}

func TestHostKeyPolicies(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	ctx := context.Background()
	noop := func(ctx context.Context, c Conn) error { return nil }

	t.Run("strict refuses unknown", func(t *testing.T) {
		e, m, _ := newExecutor(t)
		cfg := d.config("root", false)
		cfg.KnownHostsFile = filepath.Join(t.TempDir(), "empty")
		must(t, os.WriteFile(cfg.KnownHostsFile, nil, 0o600))
		err := e.Do(ctx, cfg, d.Addr, noop)
		var he *HostKeyError
		if !errors.As(err, &he) || he.Mismatch {
			t.Fatalf("got %v, want unknown-host HostKeyError", err)
		}
		if v := testutil.ToFloat64(m.HostKeyMismatch.WithLabelValues(d.Addr)); v != 0 {
			t.Errorf("unknown host counted as mismatch: %v", v)
		}
	})

	t.Run("acceptNew records then trusts", func(t *testing.T) {
		e, _, _ := newExecutor(t)
		cfg := d.config("root", false)
		cfg.HostKeyPolicy = "acceptNew"
		cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		must(t, e.Do(ctx, cfg, d.Addr, noop))
		b, err := os.ReadFile(cfg.KnownHostsFile)
		must(t, err)
		_, hosts, key, _, _, err := ssh.ParseKnownHosts(b)
		if err != nil || !bytes.Equal(key.Marshal(), d.HostKey.Marshal()) || hosts[0] != knownhosts.Normalize(d.Addr) {
			t.Fatalf("recorded %q: %v", b, err)
		}
		e.Close()
		cfg.HostKeyPolicy = "strict" // the recorded key now passes strict checking
		must(t, e.Do(ctx, cfg, d.Addr, noop))
	})

	t.Run("an edited known_hosts takes effect without a restart", func(t *testing.T) {
		e, _, _ := newExecutor(t)
		cfg := d.config("root", false)
		cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		must(t, os.WriteFile(cfg.KnownHostsFile, []byte("# no hosts yet\n"), 0o600))
		var he *HostKeyError
		if err := e.Do(ctx, cfg, d.Addr, noop); !errors.As(err, &he) {
			t.Fatalf("got %v, want unknown-host HostKeyError", err)
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, d.HostKey) + "\n"
		f, err := os.OpenFile(cfg.KnownHostsFile, os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteString(line)
		must(t, err)
		must(t, f.Close())
		must(t, e.Do(ctx, cfg, d.Addr, noop))
		// Replacing the file (a new inode) with a wrong key is noticed too.
		e.Close()
		other := writeKey(t, filepath.Join(t.TempDir(), "other"))
		tmp := cfg.KnownHostsFile + ".new"
		must(t, os.WriteFile(tmp, []byte(knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, other)+"\n"), 0o600))
		must(t, os.Rename(tmp, cfg.KnownHostsFile))
		if err := e.Do(ctx, cfg, d.Addr, noop); !errors.As(err, &he) || !he.Mismatch {
			t.Fatalf("after replacing known_hosts: got %v, want mismatch", err)
		}
	})

	t.Run("mismatch is a counted security event", func(t *testing.T) {
		for _, policy := range []string{"strict", "acceptNew"} {
			e, m, clk := newExecutor(t)
			cfg := d.config("root", false)
			cfg.HostKeyPolicy = policy
			cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
			other := writeKey(t, filepath.Join(t.TempDir(), "other"))
			must(t, os.WriteFile(cfg.KnownHostsFile, []byte(knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, other)+"\n"), 0o600))
			for range 2 {
				err := e.Do(ctx, cfg, d.Addr, noop)
				var he *HostKeyError
				if !errors.As(err, &he) || !he.Mismatch {
					t.Fatalf("%s: got %v, want mismatch", policy, err)
				}
				var ce *ConnectError
				if errors.As(err, &ce) {
					t.Errorf("%s: mismatch reported as a transient connect error", policy)
				}
			}
			// Not put into backoff like a transient failure: each attempt
			// checks the key again and counts.
			if v := testutil.ToFloat64(m.HostKeyMismatch.WithLabelValues(d.Addr)); v != 2 {
				t.Errorf("%s: mismatch counter = %v, want 2", policy, v)
			}
			if !e.state(d.Addr).retryAt.IsZero() {
				t.Errorf("%s: mismatch set a backoff", policy)
			}
			if b, _ := os.ReadFile(cfg.KnownHostsFile); bytes.Count(b, []byte("\n")) != 1 {
				t.Errorf("%s: known_hosts changed on mismatch:\n%s", policy, b)
			}
			_ = clk
		}
	})
}

func TestUnreachableBackoff(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	dead := net.JoinHostPort("127.0.0.1", itoa(freePort(t))) // nothing listens
	dials := 0
	fn := func(ctx context.Context, c Conn) error { dials++; return nil }
	err := e.Do(context.Background(), cfg, dead, fn)
	var ce *ConnectError
	if !errors.As(err, &ce) || !ce.Backoff.IsZero() {
		t.Fatalf("got %v, want a fresh ConnectError", err)
	}
	err = e.Do(context.Background(), cfg, dead, fn)
	if !errors.As(err, &ce) || ce.Backoff.IsZero() {
		t.Fatalf("got %v, want a ConnectError from backoff", err)
	}
	// Other nodes are unaffected.
	must(t, e.Do(context.Background(), cfg, d.Addr, fn))
	clk.Step(backoffBase + time.Millisecond)
	err = e.Do(context.Background(), cfg, dead, fn)
	if !errors.As(err, &ce) || !ce.Backoff.IsZero() {
		t.Fatalf("after the backoff: got %v, want a new attempt", err)
	}
	if e.state(dead).failures != 2 {
		t.Errorf("failures = %d, want 2", e.state(dead).failures)
	}
	if dials != 1 {
		t.Errorf("fn ran %d times, want once (only for the live node)", dials)
	}
}

func TestHandshakeDeadline(t *testing.T) {
	// A peer that accepts TCP and never speaks SSH.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { l.Close() })
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	dir := t.TempDir()
	writeKey(t, filepath.Join(dir, "id"))
	must(t, os.WriteFile(filepath.Join(dir, "kh"), nil, 0o600))
	e, _, _ := newExecutor(t)
	cfg := Config{User: "root", PrivateKeyFile: filepath.Join(dir, "id"), KnownHostsFile: filepath.Join(dir, "kh"),
		HostKeyPolicy: "strict", Concurrency: 1, ConnectTimeout: 300 * time.Millisecond, CommandTimeout: time.Second}
	err = e.Do(context.Background(), cfg, l.Addr().String(), func(context.Context, Conn) error { return nil })
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want ConnectError from the handshake deadline", err)
	}
}

func TestCommandTimeoutNoLeak(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	baseline := runtime.NumGoroutine()
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	cfg.CommandTimeout = 500 * time.Millisecond
	ctx := context.Background()

	err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		_, err := c.Run(ctx, `sleep 30`)
		return err
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("exec: got %v, want ErrTimeout", err)
	}

	// A hung sftp-server (stopped mid-request): the read times out, the
	// connection is closed and the next attempt reconnects.
	clk.Step(backoffMax)
	must(t, e.Do(ctx, cfg, d.Addr, func(context.Context, Conn) error { return nil }))
	pids := d.sftpServers(t)
	if len(pids) != 1 {
		t.Fatalf("sftp-server processes: %v", pids)
	}
	must(t, syscall.Kill(pids[0], syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pids[0], syscall.SIGCONT) })
	err = e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		_, _, err := c.ReadFile(ctx, d.KnownHosts)
		return err
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("sftp: got %v, want ErrTimeout", err)
	}
	must(t, syscall.Kill(pids[0], syscall.SIGCONT))
	clk.Step(backoffMax)
	must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		_, _, err := c.ReadFile(ctx, d.KnownHosts)
		return err
	}))

	e.Close()
	var n int
	for range 100 { // goroutines unwind asynchronously after Close
		if n = runtime.NumGoroutine(); n <= baseline {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines after Close, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
}

// An op blocked on a hung sftp-server ends when its pass is cancelled
// (shutdown, leadership lost) within about watchPoll, long before
// commandTimeout; and an op outliving a commandTimeout longer than
// watchPoll still ends with ErrTimeout.
func TestBlockedOpEndsWithItsPass(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	cfg.CommandTimeout = time.Minute
	must(t, e.Do(context.Background(), cfg, d.Addr, func(context.Context, Conn) error { return nil }))
	hang := func() {
		t.Helper()
		pids := d.sftpServers(t)
		if len(pids) != 1 {
			t.Fatalf("sftp-server processes: %v", pids)
		}
		must(t, syscall.Kill(pids[0], syscall.SIGSTOP))
		t.Cleanup(func() { _ = syscall.Kill(pids[0], syscall.SIGCONT) })
	}
	read := func(ctx context.Context, c Conn) error {
		_, _, err := c.ReadFile(ctx, d.KnownHosts)
		return err
	}

	hang()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	began := time.Now()
	err := e.Do(ctx, cfg, d.Addr, read)
	if took := time.Since(began); err == nil || took > watchPoll+5*time.Second {
		t.Fatalf("cancelled pass: %v after %s; want an error within about %s", err, took, watchPoll)
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrTimeout) {
		t.Errorf("cancelled pass: %v; want it to say the pass was cancelled", err)
	}

	clk.Step(backoffMax)
	cfg.CommandTimeout = 2500 * time.Millisecond
	must(t, e.Do(context.Background(), cfg, d.Addr, func(context.Context, Conn) error { return nil }))
	hang()
	began = time.Now()
	err = e.Do(context.Background(), cfg, d.Addr, read)
	took := time.Since(began)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("hung op: %v after %s, want ErrTimeout", err, took)
	}
	if took < cfg.CommandTimeout {
		t.Errorf("hung op ended after %s, before its commandTimeout %s", took, cfg.CommandTimeout)
	}
}

// TestQuote runs built command lines through a real sh: every value must
// come out byte for byte, none may be interpreted.
func TestQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "$(echo x)", "a\nb", "'''", "`id`", "*", "-n", `\'"`} {
		out, err := exec.Command("sh", "-c", command(false, `printf '%s|' "$@"`, s, "second")).Output()
		if err != nil || string(out) != s+"|second|" {
			t.Errorf("value %q came out as %q (%v)", s, out, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestReleaseAfter(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	ctx := context.Background()
	noop := func(ctx context.Context, c Conn) error { return nil }
	cfg := d.config("root", false)
	connected := func(e *Executor) bool {
		ns := e.state(d.Addr)
		ns.mu.Lock()
		defer ns.mu.Unlock()
		return ns.client != nil
	}

	t.Run("after every reconciler's pass", func(t *testing.T) {
		e, m, _ := newExecutor(t)
		e.ReleaseAfter(func() int { return 2 }, time.Hour)
		must(t, e.Do(ctx, cfg, d.Addr, noop))
		if !connected(e) {
			t.Fatal("closed after the first of two passes")
		}
		must(t, e.Do(ctx, cfg, d.Addr, noop))
		if connected(e) {
			t.Fatal("still connected after both passes")
		}
		before := testutil.ToFloat64(m.SSHSessions)
		must(t, e.Do(ctx, cfg, d.Addr, noop)) // a late pass dials again
		if after := testutil.ToFloat64(m.SSHSessions); after != before+1 {
			t.Errorf("sessions %v -> %v, want one new session for the redial", before, after)
		}
	})

	t.Run("not while a pass is running", func(t *testing.T) {
		e, _, _ := newExecutor(t)
		e.ReleaseAfter(func() int { return 1 }, time.Hour)
		inner := make(chan error, 1)
		must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			go func() {
				inner <- e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
					_, _, err := c.ReadFile(ctx, "/etc/hostname")
					return err
				})
			}()
			// The other pass finishes first while this one holds the
			// connection: it must not be closed under us.
			if err := <-inner; err != nil {
				return err
			}
			_, _, err := c.ReadFile(ctx, "/etc/hostname")
			return err
		}))
		if connected(e) {
			t.Fatal("still connected after the last pass")
		}
	})

	t.Run("when idle", func(t *testing.T) {
		e, _, clk := newExecutor(t)
		e.ReleaseAfter(func() int { return 3 }, time.Minute)
		must(t, e.Do(ctx, cfg, d.Addr, noop))
		clk.Step(59 * time.Second)
		time.Sleep(50 * time.Millisecond)
		if !connected(e) {
			t.Fatal("closed before the idle time")
		}
		clk.Step(time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for connected(e) {
			if time.Now().After(deadline) {
				t.Fatal("idle connection not closed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// The steady-state quick check: a file whose size, mode and mtime did not
// change is answered from the cache until fullReadEvery has passed; any
// attribute change, or the operator's own write, reads it again.
func TestSFTPReadQuickCheck(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "ca.crt")
	must(t, os.WriteFile(p, []byte("AAAA\n"), 0o644))
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	must(t, os.Chtimes(p, old, old))
	read := func() string {
		t.Helper()
		var got []byte
		must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) (err error) {
			got, _, err = c.ReadFile(ctx, p)
			return err
		}))
		return string(got)
	}
	if got := read(); got != "AAAA\n" {
		t.Fatalf("first read %q", got)
	}
	// Same size, same mtime: only the periodic full read sees it.
	must(t, os.WriteFile(p, []byte("BBBB\n"), 0o644))
	must(t, os.Chtimes(p, old, old))
	if got := read(); got != "AAAA\n" {
		t.Fatalf("read %q: the quick check did not answer from the cache", got)
	}
	clk.Step(fullReadEvery)
	if got := read(); got != "BBBB\n" {
		t.Fatalf("after fullReadEvery: %q, want the new content", got)
	}
	// A changed mtime is seen at once.
	must(t, os.WriteFile(p, []byte("CCCC\n"), 0o644))
	if got := read(); got != "CCCC\n" {
		t.Fatalf("after an edit: %q", got)
	}
	// So is an mtime set back, and a changed mode.
	must(t, os.WriteFile(p, []byte("DDDD\n"), 0o644))
	must(t, os.Chtimes(p, old, old))
	if got := read(); got != "DDDD\n" {
		t.Fatalf("after an edit: %q", got)
	}
	must(t, os.WriteFile(p, []byte("EEEE\n"), 0o644))
	must(t, os.Chtimes(p, old, old))
	must(t, os.Chmod(p, 0o600))
	if got := read(); got != "EEEE\n" {
		t.Fatalf("after chmod: %q", got)
	}
	// The operator's own write drops the entry even when attributes match.
	must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		return c.WriteFile(ctx, p, []byte("FFFF\n"), 0o600)
	}))
	must(t, os.Chtimes(p, old, old))
	if got := read(); got != "FFFF\n" {
		t.Fatalf("after the operator's write: %q", got)
	}
}

func TestSFTPListQuickCheckAndHeldProcSys(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	must(t, os.WriteFile(filepath.Join(dir, "a"), nil, 0o644))
	must(t, os.Chtimes(dir, old, old))
	list := func() []string {
		t.Helper()
		var names []string
		must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			ents, err := c.ReadDir(ctx, dir)
			for _, x := range ents {
				names = append(names, x.Name)
			}
			return err
		}))
		slices.Sort(names)
		return names
	}
	if got := list(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first listing %v", got)
	}
	must(t, os.WriteFile(filepath.Join(dir, "b"), nil, 0o644))
	if got := list(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("a new entry (new mtime) not listed: %v", got)
	}
	must(t, os.Chtimes(dir, old, old))
	_ = list() // cached with the old mtime
	must(t, os.WriteFile(filepath.Join(dir, "c"), nil, 0o644))
	must(t, os.Chtimes(dir, old, old))
	if got := list(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("listing %v: the quick check did not answer from the cache", got)
	}
	clk.Step(fullReadEvery)
	if got := list(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after fullReadEvery: %v", got)
	}

	// A kernel parameter is read through a handle kept open: the same
	// value comes back, and the handle stays held for the next pass.
	const p = "/proc/sys/kernel/ostype"
	for range 3 {
		must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			got, _, err := c.ReadFile(ctx, p)
			if err == nil && string(got) != "Linux\n" {
				t.Errorf("read %q", got)
			}
			return err
		}))
	}
	if h := e.state(d.Addr).conn.(*sftpConn).held.get(p); h == nil || string(h.last) != "Linux\n" {
		t.Fatalf("no held handle for %s: %+v", p, h)
	}
}

// A keepalive probe goes only to a connection no pass used during the last
// interval: in steady state the passes themselves show the peer is alive.
func TestKeepAliveSkipsConnectionsInUse(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	cfg.KeepAlive = time.Hour // the executor's own ticker stays quiet
	// Connect with the usual timeout: it bounds the handshake too, which
	// takes more than 300 ms on a busy machine.
	must(t, e.Do(context.Background(), cfg, d.Addr, func(context.Context, Conn) error { return nil }))
	c := e.state(d.Addr).client
	// Only the probe under test waits briefly. Nothing else reads the
	// client's config now: the executor's own ticker fires in an hour.
	c.cfg.ConnectTimeout = 300 * time.Millisecond

	// Freeze the node's side: a probe sent now is never answered.
	frozen := d.descendants(t, "")
	for _, pid := range frozen {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	t.Cleanup(func() {
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	c.touch()
	e.keepAlive.sweepAt(time.Now(), true)
	time.Sleep(3 * c.cfg.ConnectTimeout)
	if !c.alive() {
		t.Fatal("a connection used within the interval was probed (and closed)")
	}
	c.lastUsed.Store(0)
	e.keepAlive.sweepAt(time.Now(), true)
	deadline := time.Now().Add(30 * time.Second)
	for c.alive() {
		if time.Now().After(deadline) {
			t.Fatal("an idle connection whose peer does not answer was not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodes.ssh.concurrency bounds connections being set up, not work over
// kept ones.
func TestConcurrencyBoundsDialsOnly(t *testing.T) {
	t.Run("dials", func(t *testing.T) {
		// Listeners that accept and never speak: each dial holds its slot
		// until its handshake deadline.
		var accepted atomic.Int32
		var addrs []string
		for range 5 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			t.Cleanup(func() { ln.Close() })
			addrs = append(addrs, ln.Addr().String())
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted.Add(1)
					go func() {
						_, _ = io.Copy(io.Discard, c)
						c.Close()
					}()
				}
			}()
		}
		e, _, _ := newExecutor(t)
		d := startSSHD(t, sshdOptions{})
		cfg := d.config("root", false)
		cfg.Concurrency, cfg.ConnectTimeout = 2, time.Second
		var wg sync.WaitGroup
		for _, a := range addrs {
			wg.Go(func() {
				_ = e.Do(context.Background(), cfg, a, func(context.Context, Conn) error { return nil })
			})
		}
		time.Sleep(500 * time.Millisecond) // well inside the first two handshakes' deadline
		if n := accepted.Load(); n != 2 {
			t.Errorf("%d connections being set up at once, want nodes.ssh.concurrency = 2", n)
		}
		wg.Wait()
		if n := accepted.Load(); n != 5 {
			t.Errorf("%d nodes dialled in the end, want 5", n)
		}
	})

	t.Run("work over a kept connection", func(t *testing.T) {
		d := startSSHD(t, sshdOptions{})
		e, _, _ := newExecutor(t)
		cfg := d.config("root", false)
		cfg.Concurrency = 1
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		held, release := make(chan struct{}), make(chan struct{})
		first := make(chan error, 1)
		go func() {
			first <- e.Do(ctx, cfg, d.Addr, func(context.Context, Conn) error {
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		// The only slot's dial is done; a second pass on the same node
		// must not wait for the first pass to end.
		err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			_, _, err := c.ReadFile(ctx, "/etc/hostname")
			return err
		})
		close(release)
		must(t, err)
		must(t, <-first)
	})
}

// FileMatches answers what ReadFile and a comparison would, from the cache
// when the file is unchanged, through a recording connection too, and for
// connections without the method by reading; ReadFile's bytes stay the
// caller's own after it.
func TestFileMatches(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "ca.crt")
	must(t, os.WriteFile(p, []byte("AAAA\n"), 0o640))
	type result struct {
		same bool
		have string
		mode fs.FileMode
		err  error
	}
	check := func(wrap func(Conn) Conn, want string) result {
		t.Helper()
		var r result
		must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			var have []byte
			r.same, have, r.mode, r.err = FileMatches(ctx, wrap(c), p, []byte(want))
			r.have = string(have)
			return nil
		}))
		return r
	}
	plain := func(c Conn) Conn { return c }
	recording := func(c Conn) Conn { return Recording(c) }
	readOnly := func(c Conn) Conn { return readFileOnly{c} }
	for _, w := range []struct {
		name string
		wrap func(Conn) Conn
	}{{"sftp", plain}, {"recording", recording}, {"reading", readOnly}} {
		// Twice each: the first may read in full, the second is answered
		// from the cache.
		for range 2 {
			if r := check(w.wrap, "AAAA\n"); !r.same || r.have != "" || r.mode != 0o640 || r.err != nil {
				t.Errorf("%s: same content: %+v", w.name, r)
			}
			if r := check(w.wrap, "AAAB\n"); r.same || r.have != "AAAA\n" || r.mode != 0o640 || r.err != nil {
				t.Errorf("%s: other content: %+v", w.name, r)
			}
			if r := check(w.wrap, "AAAA"); r.same || r.have != "AAAA\n" || r.err != nil {
				t.Errorf("%s: a prefix: %+v", w.name, r)
			}
		}
	}
	// A caller changing ReadFile's bytes does not change what the cache
	// compares.
	must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		b, _, err := c.ReadFile(ctx, p)
		if err == nil {
			b[0] = 'X'
		}
		return err
	}))
	if r := check(plain, "AAAA\n"); !r.same {
		t.Errorf("after a caller changed ReadFile's bytes: %+v", r)
	}
	must(t, os.Remove(p))
	if r := check(plain, "AAAA\n"); !errors.Is(r.err, fs.ErrNotExist) || r.same {
		t.Errorf("absent file: %+v", r)
	}
}

// readFileOnly hides every method but Conn's: FileMatches reads.
type readFileOnly struct{ Conn }
