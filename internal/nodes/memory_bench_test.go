package nodes

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
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
	n := 100
	if s := os.Getenv("NODES_BENCH_AGENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("NODES_BENCH_AGENTS=%q: want a positive number of agents", s)
		}
	}
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
	n := float64(len(addrs))
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n }
	b.ReportMetric(per(after.heapAlloc, before.heapAlloc), "live-B/conn")
	b.ReportMetric(per(after.heapInuse, before.heapInuse), "heap-B/conn")
	b.ReportMetric(per(after.stackInuse, before.stackInuse), "stack-B/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/conn")
	b.ReportMetric(per(after.rss, before.rss), "rss-B/conn")
	b.Logf("%d kept connections: live heap %+d KiB, heap in use %+d KiB, goroutine stacks %+d KiB, goroutines %+d, RSS %+d KiB",
		len(addrs), kib(after.heapAlloc, before.heapAlloc), kib(after.heapInuse, before.heapInuse), kib(after.stackInuse, before.stackInuse),
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
					k.lastFull = time.Time{}
				}
				k.sweep()
			}
		})
	}
}
