package leader

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// Debian's zookeeper package: the server jar (its manifest carries the
// class path of its dependencies) and the scripts that mark the install.
const (
	zkScript = "/usr/share/zookeeper/bin/zkServer.sh"
	zkJar    = "/usr/share/java/zookeeper.jar"
	// slf4jSimple, when installed, gives the server a log to show on failure.
	slf4jSimple = "/usr/share/java/slf4j-simple.jar"
)

// zkServer is a real standalone ZooKeeper on a loopback port with its own
// data dir and config, stopped in t.Cleanup.
type zkServer struct {
	t    *testing.T
	java string
	dir  string
	port int
	log  *syncBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

func startZK(t *testing.T) *zkServer {
	t.Helper()
	s := newZK(t, freePort(t))
	s.start()
	return s
}

// newZK prepares a server on port without starting it.
func newZK(t *testing.T, port int) *zkServer {
	t.Helper()
	for _, p := range []string{zkScript, zkJar} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs Debian package zookeeper (%s missing): apt-get install -y zookeeper", p)
		}
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("needs java for ZooKeeper: apt-get install -y default-jre-headless")
	}
	dir := t.TempDir()
	s := &zkServer{t: t, java: java, dir: dir, port: port, log: &syncBuffer{}}
	// tickTime 500 ms lets sessions be as short as 1 s and expire on time.
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("ZooKeeper server log:\n%s", tail(s.log.String(), 4000))
		}
	})
	return s
}

func (s *zkServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// start runs the server (again, with the same data) and waits until it
// answers "ruok".
func (s *zkServer) start() {
	s.t.Helper()
	cp := s.dir + ":" + zkJar
	if _, err := os.Stat(slf4jSimple); err == nil {
		cp += ":" + slf4jSimple
	}
	cmd := exec.Command(s.java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dzookeeper.jmx.log4j.disable=true",
		"-cp", cp, "org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(s.dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start ZooKeeper: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !s.ruok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("ZooKeeper on %s did not answer within 60s; log:\n%s", s.addr(), tail(s.log.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop kills the server process (no goodbye to clients).
func (s *zkServer) stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func (s *zkServer) ruok() bool {
	c, err := net.DialTimeout("tcp", s.addr(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ruok"); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return string(b) == "imok"
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// testLog collects log lines (goroutines of the ZooKeeper client may log
// after a test ends, which t.Log does not allow) and shows them on failure.
func testLog(t *testing.T) logr.Logger {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", tail(buf.String(), 12000))
		}
	})
	return funcr.New(func(prefix, args string) {
		fmt.Fprintf(buf, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, strings.TrimSpace(args))
	}, funcr.Options{Verbosity: 1})
}
