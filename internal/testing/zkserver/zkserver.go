// Package zkserver runs a real standalone ZooKeeper (Debian's zookeeper
// package) on a loopback port for tests, with its own data dir and config,
// stopped in t.Cleanup.
package zkserver

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/logbuf"
)

// Debian's zookeeper package: the server jar (its manifest carries the
// class path of its dependencies) and the scripts that mark the install.
const (
	zkScript = "/usr/share/zookeeper/bin/zkServer.sh"
	zkJar    = "/usr/share/java/zookeeper.jar"
	// slf4jSimple, when installed, gives the server a log to show on failure.
	slf4jSimple = "/usr/share/java/slf4j-simple.jar"
)

// Server is one ZooKeeper server process (restartable with the same data).
type Server struct {
	t    *testing.T
	java string
	dir  string
	port int
	log  *logbuf.Buffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs a server on a free loopback port and waits until it answers.
func Start(t *testing.T) *Server {
	t.Helper()
	s := New(t, FreePort(t))
	s.Start()
	return s
}

// New prepares a server on port without starting it. It skips the test
// when ZooKeeper or java is not installed.
func New(t *testing.T, port int) *Server {
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
	s := &Server{t: t, java: java, dir: dir, port: port, log: &logbuf.Buffer{}}
	// tickTime 500 ms lets sessions be as short as 1 s and expire on time.
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("ZooKeeper server log:\n%s", logbuf.Tail(s.log.String(), 4000))
		}
	})
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Start runs the server (again, with the same data) and waits until it
// answers "ruok".
func (s *Server) Start() {
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
			s.t.Fatalf("ZooKeeper on %s did not answer within 60s; log:\n%s", s.Addr(), logbuf.Tail(s.log.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server process (no goodbye to clients).
func (s *Server) Stop() {
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

func (s *Server) ruok() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
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

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
