package leader

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/logbuf"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/registry-operator/registry-operator/internal/testing/zkserver"
)

// zkServer is a real standalone ZooKeeper on a loopback port, stopped in
// t.Cleanup (internal/testing/zkserver).
type zkServer struct{ *zkserver.Server }

func startZK(t *testing.T) *zkServer { t.Helper(); return &zkServer{zkserver.Start(t)} }

// newZK prepares a server on port without starting it.
func newZK(t *testing.T, port int) *zkServer { t.Helper(); return &zkServer{zkserver.New(t, port)} }

func (s *zkServer) addr() string { return s.Addr() }
func (s *zkServer) start()       { s.Start() }
func (s *zkServer) stop()        { s.Stop() }

func freePort(t *testing.T) int { t.Helper(); return zkserver.FreePort(t) }

func tail(s string, n int) string { return logbuf.Tail(s, n) }

// testLog collects log lines (goroutines of the ZooKeeper client may log
// after a test ends, which t.Log does not allow) and shows them on failure.
func testLog(t *testing.T) logr.Logger {
	buf := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", tail(buf.String(), 12000))
		}
	})
	return funcr.New(func(prefix, args string) {
		fmt.Fprintf(buf, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, strings.TrimSpace(args))
	}, funcr.Options{Verbosity: 1})
}
