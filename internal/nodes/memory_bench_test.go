package nodes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/crypto/ssh"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// keptHeapProfile, when set, receives a heap profile taken while the
// benchmark holds every connection (go test -memprofile is written only
// after the connections are closed, when nothing of them is in use).
var keptHeapProfile = flag.String("kept.heapprofile", "", "write a heap profile taken while BenchmarkKeptConnections holds its connections")

// memSnapshot is the process's memory after a full GC.
type memSnapshot struct {
	heapAlloc, heapInuse, stackInuse uint64
	goroutines                       int
	rss                              uint64
}

func takeMemSnapshot(tb testing.TB) memSnapshot {
	tb.Helper()
	// Each GC halves at most once the stack of a goroutine that uses
	// little of it; a long run goes through many, so take several.
	for range 5 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heapAlloc: ms.HeapAlloc, heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, goroutines: runtime.NumGoroutine(), rss: vmRSS(tb)}
}

// vmRSS reads the process's resident set from /proc/self/status.
func vmRSS(tb testing.TB) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// keptCABytes is the size of the CA keptPass places: that of the default
// (ECDSA P-256) registry CA's PEM. NODES_BENCH_CA_BYTES changes it: the
// largest packet sent and received on a connection stays allocated in
// x/crypto's buffers, so a larger file costs about three times its size.
func keptCABytes(tb testing.TB) int {
	tb.Helper()
	s := os.Getenv("NODES_BENCH_CA_BYTES")
	if s == "" {
		return 640
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxRead {
		tb.Fatalf("NODES_BENCH_CA_BYTES=%q: want a size from 1 to %d", s, maxRead)
	}
	return n
}

// keptPass returns what the node reconcilers leave on a kept connection
// after their first pass: the CA written and read back (so the file cache
// holds it), its directory listed, and a kernel parameter read through a
// held handle.
func keptPass(caBytes int) func(ctx context.Context, c Conn) error {
	return func(ctx context.Context, c Conn) error { return placeCA(ctx, c, bytes.Repeat([]byte("x"), caBytes)) }
}

func placeCA(ctx context.Context, c Conn, ca []byte) error {
	const p = "/etc/docker/certs.d/registry.example:5000/ca.crt"
	if err := c.WriteFile(ctx, p, ca, 0o644); err != nil {
		return err
	}
	if _, _, err := c.ReadFile(ctx, p); err != nil {
		return err
	}
	if _, err := c.ReadDir(ctx, "/etc/docker/certs.d"); err != nil {
		return err
	}
	_, _, err := c.ReadFile(ctx, "/proc/sys/net/ipv4/ip_forward")
	return err
}

// BenchmarkKeptConnections measures what one kept connection (SSH client,
// SFTP session, file cache, held handle) costs the operator, holding one to
// each of NODES_BENCH_AGENTS (default 100) real sshd agents:
//
//	go test ./internal/nodes -run '^$' -bench KeptConnections -benchtime 1x \
//	    -kept.heapprofile /tmp/kept.pprof
//	go tool pprof -sample_index inuse_space -top /tmp/kept.pprof
//
// It reports live heap (the objects), heap in use (their spans), goroutine stacks, goroutines and resident memory
// per connection, each as the difference between before dialling and
// after every pass, both after a full GC.
func BenchmarkKeptConnections(b *testing.B) {
	n := benchAgents(b)
	f := testfleet.StartT(b, testfleet.Options{N: n, Prefix: "rom"})
	cfg := Config{
		User: "root", Port: 22, PrivateKeyFile: f.PrivateKeyPath, KnownHostsFile: f.KnownHostsPath,
		HostKeyPolicy: "strict", Concurrency: 32,
		ConnectTimeout: 30 * time.Second, CommandTimeout: time.Minute, KeepAlive: 30 * time.Second,
	}
	caBytes := keptCABytes(b)
	for b.Loop() {
		measureKept(b, cfg, f.Addresses(), keptPass(caBytes))
	}
}

func measureKept(b *testing.B, cfg Config, addrs []string, pass func(context.Context, Conn) error) {
	e := NewExecutor(metrics.New(metrics.BuildInfo{}), clock.RealClock{}, logr.Discard())
	defer e.Close()
	before := takeMemSnapshot(b)
	ctx := context.Background()
	work := make(chan string)
	errs := make(chan error, len(addrs))
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for a := range work {
				errs <- e.Do(ctx, cfg, a, pass)
			}
		})
	}
	for _, a := range addrs {
		work <- a
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	after := takeMemSnapshot(b)
	if *keptHeapProfile != "" {
		writeHeapProfile(b, *keptHeapProfile)
	}
	reportPerConn(b, "kept", len(addrs), before, after)
}

// reportPerConn reports the difference between two snapshots per
// connection, and logs the totals.
func reportPerConn(b *testing.B, what string, conns int, before, after memSnapshot) {
	n := float64(conns)
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n }
	b.ReportMetric(per(after.heapAlloc, before.heapAlloc), "live-B/conn")
	b.ReportMetric(per(after.heapInuse, before.heapInuse), "heap-B/conn")
	b.ReportMetric(per(after.stackInuse, before.stackInuse), "stack-B/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/conn")
	b.ReportMetric(per(after.rss, before.rss), "rss-B/conn")
	b.Logf("%d %s connections: live heap %+d KiB, heap in use %+d KiB, goroutine stacks %+d KiB, goroutines %+d, RSS %+d KiB",
		conns, what, kib(after.heapAlloc, before.heapAlloc), kib(after.heapInuse, before.heapInuse), kib(after.stackInuse, before.stackInuse),
		after.goroutines-before.goroutines, kib(after.rss, before.rss))
}

func kib(a, b uint64) int64 { return (int64(a) - int64(b)) >> 10 }

func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(fmt.Errorf("write heap profile %s: %w", path, err))
	}
}

// BenchmarkPollIdle is one tick of the executor's loop over 1000 kept
// connections on which nodes sent nothing: "tick" what the loop costs
// every pollEvery in steady state, "full" the sweep every fullPollEvery
// that polls each connection.
func BenchmarkPollIdle(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "tick"
		if full {
			name = "full"
		}
		b.Run(name, func(b *testing.B) {
			var k keepAlive
			defer k.close()
			for range 1000 {
				k.add(&client{done: make(chan struct{}), reqs: make(chan *ssh.Request, 16), chans: make(chan ssh.NewChannel, 16),
					chanReqs: make(chan *ssh.Request, 16), closed: k.remove})
			}
			k.sweep() // the first sweep is a full one
			for b.Loop() {
				if full {
					k.sweepAt(time.Now(), true)
				} else {
					k.sweep()
				}
			}
		})
	}
}

// BenchmarkBareConnections measures what x/crypto/ssh alone holds per kept
// connection, with nothing of the operator on top, against the same fleet
// and with the same snapshots as BenchmarkKeptConnections: the floor a
// connection per node cannot go below.
//
//   - transport: ssh.NewClientConn's connection, its requests and channel
//     opens left unread (in a steady state a node sends only
//     hostkeys-00@openssh.com, which x/crypto's queue holds).
//   - sftp: the transport plus one session channel with the sftp subsystem
//     and one INIT/VERSION exchange on it, so the channel's and the
//     ciphers' buffers are what a real pass leaves.
//   - sftp+handlers: the same plus the two goroutines ssh.NewClient would
//     add, one discarding global requests and one rejecting channel opens.
func BenchmarkBareConnections(b *testing.B) {
	n := benchAgents(b)
	f := testfleet.StartT(b, testfleet.Options{N: n, Prefix: "rob"})
	cfg, err := f.ClientConfig("root")
	if err != nil {
		b.Fatal(err)
	}
	// What dial sets beyond x/crypto's defaults (ciphers, key exchanges and
	// MACs are left to them): the host key algorithms on record, ed25519
	// for every fleet host.
	cfg.HostKeyAlgorithms = []string{ssh.KeyAlgoED25519}
	cfg.Timeout = 30 * time.Second
	for _, v := range []struct {
		name           string
		sftp, handlers bool
	}{{"transport", false, false}, {"sftp", true, false}, {"sftp+handlers", true, true}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				measureBare(b, cfg, f.Addresses(), v.sftp, v.handlers)
			}
		})
	}
}

// benchAgents is NODES_BENCH_AGENTS, the number of agents (default 100).
func benchAgents(tb testing.TB) int {
	tb.Helper()
	s := os.Getenv("NODES_BENCH_AGENTS")
	if s == "" {
		return 100
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("NODES_BENCH_AGENTS=%q: want a positive number of agents", s)
	}
	return n
}

// bareConn is one connection as x/crypto alone keeps it.
type bareConn struct {
	conn ssh.Conn
	ch   ssh.Channel // nil without sftp
}

func measureBare(b *testing.B, cfg *ssh.ClientConfig, addrs []string, sftp, handlers bool) {
	before := takeMemSnapshot(b)
	conns := make([]bareConn, len(addrs))
	work := make(chan int)
	errs := make(chan error, len(addrs))
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range work {
				var err error
				conns[i], err = dialBare(cfg, addrs[i], sftp, handlers)
				errs <- err
			}
		})
	}
	for i := range addrs {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	defer func() {
		for _, c := range conns {
			if c.conn != nil {
				c.conn.Close()
			}
		}
	}()
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	after := takeMemSnapshot(b)
	reportPerConn(b, "bare", len(addrs), before, after)
}

func dialBare(cfg *ssh.ClientConfig, addr string, sftp, handlers bool) (bareConn, error) {
	addr = net.JoinHostPort(addr, "22")
	nc, err := net.DialTimeout("tcp", addr, cfg.Timeout)
	if err != nil {
		return bareConn{}, err
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return bareConn{}, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	c := bareConn{conn: conn}
	if handlers {
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "no channels")
			}
		}()
	}
	if !sftp {
		return c, nil
	}
	if c.ch, err = openBareSFTP(conn); err != nil {
		conn.Close()
		return bareConn{}, fmt.Errorf("sftp on %s: %w", addr, err)
	}
	return c, nil
}

// openBareSFTP opens a session channel with the sftp subsystem and
// exchanges SSH_FXP_INIT (version 3) for the server's SSH_FXP_VERSION.
// The channel's own requests are left unread, like the connection's.
func openBareSFTP(conn ssh.Conn) (ssh.Channel, error) {
	ch, _, err := conn.OpenChannel("session", nil)
	if err != nil {
		return nil, err
	}
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
	if err == nil && !ok {
		err = errors.New("subsystem sftp refused")
	}
	if err != nil {
		return nil, err
	}
	// uint32 length 5, byte SSH_FXP_INIT (1), uint32 version 3.
	if _, err := ch.Write([]byte{0, 0, 0, 5, 1, 0, 0, 0, 3}); err != nil {
		return nil, err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(ch, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[4] != 2 {
		return nil, fmt.Errorf("got packet type %d, want SSH_FXP_VERSION (2)", hdr[4])
	}
	// The rest: version and extensions.
	rest := binary.BigEndian.Uint32(hdr[:4]) - 1
	if _, err := io.CopyN(io.Discard, ch, int64(rest)); err != nil {
		return nil, err
	}
	return ch, nil
}
