package leader

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/logbuf"

	"github.com/go-logr/logr/funcr"
)

// childEnv carries "servers|path" to a re-executed test binary that runs
// one elector as a separate process, so it can be killed for real.
const childEnv = "LEADER_TEST_CHILD"

func TestMain(m *testing.M) {
	if arg := os.Getenv(childEnv); arg != "" {
		runChild(arg)
	}
	os.Exit(m.Run())
}

// runChild is the child's body: one elector until SIGTERM.
func runChild(arg string) {
	servers, p, _ := strings.Cut(arg, "|")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{})
	e, err := New(Config{Servers: strings.Split(servers, ","), Path: p, SessionTimeout: testSession,
		Self: Self("child"), Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	err = e.Run(ctx, func(ctx context.Context) error {
		fmt.Println("LEADING")
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	e.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

type child struct {
	cmd     *exec.Cmd
	leading chan struct{}
	exited  chan error
}

func startChild(t *testing.T, z *zkServer, p string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+z.addr()+"|"+p)
	logs := &logbuf.Buffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, leading: make(chan struct{}), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if sc.Text() == "LEADING" && !once {
				once = true
				close(c.leading)
			}
		}
		c.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("child log:\n%s", tail(logs.String(), 6000))
		}
	})
	select {
	case <-c.leading:
	case <-time.After(30 * time.Second):
		t.Fatal("child did not lead within 30s")
	}
	return c
}

// handover runs a child leader, a follower in this process, then ends the
// child with sig and returns how long the follower took to lead.
func handover(t *testing.T, sig os.Signal, within time.Duration) {
	z := startZK(t)
	rec := newTerms(t)
	p := "/ro/leader"
	c := startChild(t, z, p)
	b := startInst(t, "b", []string{z.addr()}, p, rec)
	waitFor(t, 30*time.Second, "b to follow the child", b.following)
	if got := b.e.Leader(); got.PID != c.cmd.Process.Pid || got.Version != "child" {
		t.Errorf("follower shows leader %+v, want the child (pid %d)", got, c.cmd.Process.Pid)
	}
	if rec.started() != 0 {
		t.Fatal("b led while the child did")
	}
	sent := time.Now()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, fmt.Sprintf("b to take over within %s of %v", within, sig), b.e.IsLeader)
	t.Logf("takeover %s after %v", time.Since(sent).Round(time.Millisecond), sig)
	select {
	case err := <-c.exited:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("child on SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("child did not exit")
	}
}

func TestKilledLeaderIsReplacedWithinSessionTimeout(t *testing.T) {
	handover(t, syscall.SIGKILL, testSession+5*time.Second)
}

func TestSIGTERMHandsOverWithinTwoSeconds(t *testing.T) {
	handover(t, syscall.SIGTERM, 2*time.Second)
}
