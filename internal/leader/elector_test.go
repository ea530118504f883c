package leader

import (
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestOneLeadsOtherFollowsAndTakesOverOnRelease(t *testing.T) {
	z := startZK(t)
	rec := newTerms(t)
	path := "/ro/leader"
	a := startInst(t, "a", []string{z.addr()}, path, rec)
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	b := startInst(t, "b", []string{z.addr()}, path, rec)
	waitFor(t, 30*time.Second, "b to follow", b.following)

	if a.g.Value() != 1 || b.g.Value() != 0 {
		t.Errorf("leader metric: a=%v b=%v, want 1 and 0", a.g.Value(), b.g.Value())
	}
	if got, want := b.e.Leader(), a.e.cfg.Self; got != want {
		t.Errorf("follower sees leader %+v, want %+v", got, want)
	}
	if got := rec.started(); got != 1 {
		t.Errorf("%d leading runs started, want 1", got)
	}
	kids := children(t, z, path)
	if len(kids) != 2 {
		t.Errorf("candidates under %s: %v, want 2", path, kids)
	}

	// Graceful release (what SIGTERM does): the follower takes over at
	// once, not after a session timeout.
	stopped := time.Now()
	a.stop(t)
	waitFor(t, 2*time.Second, "b to lead within 2s of a's release", b.e.IsLeader)
	t.Logf("handover took %s", time.Since(stopped).Round(time.Millisecond))
	if a.fences.Load() == 0 {
		t.Error("a was not fenced on shutdown")
	}
	if got := b.e.Leader(); got != b.e.cfg.Self {
		t.Errorf("new leader shows %+v, want itself", got)
	}
}

// A partitioned leader (its packets dropped, no reset: the server hears
// nothing until the session expires) must fence itself before ZooKeeper
// lets the follower win.
func TestPartitionedLeaderIsFencedBeforeTakeover(t *testing.T) {
	z := startZK(t)
	rec := newTerms(t)
	path := "/ro/leader"
	link := &cutter{}
	a := startInst(t, "a", []string{z.addr()}, path, rec, func(c *Config) { c.Dialer = link.dial })
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	b := startInst(t, "b", []string{z.addr()}, path, rec)
	waitFor(t, 30*time.Second, "b to follow", b.following)

	link.cut.Store(true)
	cut := time.Now()
	waitFor(t, testSession+5*time.Second, "b to take over", b.e.IsLeader)
	tookOver := time.Now()
	t.Logf("takeover %s after the cut", tookOver.Sub(cut).Round(time.Millisecond))
	fenced := a.fencedAt.Load()
	switch {
	case fenced == nil:
		t.Fatal("a was never fenced")
	case !fenced.Before(tookOver):
		t.Errorf("a fenced at %s, after b took over at %s", fenced.Format("15:04:05.000"), tookOver.Format("15:04:05.000"))
	}
	if a.e.IsLeader() || a.g.Value() != 0 || a.e.Ready() {
		t.Errorf("partitioned a: leader=%v metric=%v ready=%v, want false 0 false", a.e.IsLeader(), a.g.Value(), a.e.Ready())
	}

	// Healed: a's session expired meanwhile; it stands again, as follower.
	link.cut.Store(false)
	waitFor(t, 30*time.Second, "a to follow again", a.following)
	if got := a.e.Leader(); got != b.e.cfg.Self {
		t.Errorf("a sees leader %+v, want b", got)
	}
}

func TestZooKeeperRestartNeverTwoLeaders(t *testing.T) {
	z := startZK(t)
	rec := newTerms(t)
	path := "/ro/leader"
	a := startInst(t, "a", []string{z.addr()}, path, rec)
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	b := startInst(t, "b", []string{z.addr()}, path, rec)
	waitFor(t, 30*time.Second, "b to follow", b.following)

	z.stop()
	waitFor(t, testSession, "a to be fenced", func() bool { return a.fences.Load() > 0 && !a.e.IsLeader() })
	if a.g.Value() != 0 {
		t.Errorf("leader metric of a with ZooKeeper down: %v, want 0", a.g.Value())
	}
	waitFor(t, testSession, "both to report not ready", func() bool { return !a.e.Ready() && !b.e.Ready() })
	if r := a.e.Reason(); !strings.Contains(r, "no ZooKeeper session") {
		t.Errorf("reason while ZooKeeper is down: %q", r)
	}
	// Down for longer than a session: a leader that did not fence would
	// still be running when the other wins.
	time.Sleep(testSession + time.Second)
	if a.e.IsLeader() || b.e.IsLeader() {
		t.Error("an instance leads without ZooKeeper")
	}
	before := rec.started()
	z.start()
	waitFor(t, 30*time.Second, "leadership to resume", func() bool { return a.e.IsLeader() || b.e.IsLeader() })
	waitFor(t, 30*time.Second, "the other to follow", func() bool { return a.following() || b.following() })
	if rec.started() <= before {
		t.Error("no leading run started after ZooKeeper came back")
	}
}

func TestWaitsForUnreachableZooKeeper(t *testing.T) {
	z := newZK(t, freePort(t))
	rec := newTerms(t)
	a := startInst(t, "a", []string{z.addr()}, "/ro/leader", rec)
	waitFor(t, 10*time.Second, "a to report the missing session", func() bool {
		return strings.Contains(a.e.Reason(), "no ZooKeeper session")
	})
	if a.e.Ready() || a.e.IsLeader() || a.g.Value() != 0 || rec.started() != 0 {
		t.Errorf("without ZooKeeper: ready=%v leader=%v metric=%v runs=%d, want false false 0 0",
			a.e.Ready(), a.e.IsLeader(), a.g.Value(), rec.started())
	}
	z.start()
	waitFor(t, 30*time.Second, "a to lead once ZooKeeper is up", a.e.IsLeader)
	if a.g.Value() != 1 || !a.e.Ready() {
		t.Errorf("leading: metric=%v ready=%v", a.g.Value(), a.e.Ready())
	}
}

func TestCandidateOrder(t *testing.T) {
	got := candidates([]string{"_c_b-n_0000000010", "pki", "_c_a-n_0000000002", "x-n_12", "_c_c-n_0000000009"})
	want := []string{"_c_a-n_0000000002", "_c_c-n_0000000009", "_c_b-n_0000000010"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("candidates = %v, want %v", got, want)
	}
}

func children(t *testing.T, z *zkServer, p string) []string {
	t.Helper()
	c, _, err := zk.Connect([]string{z.addr()}, testSession, zk.WithLogger(zkLogger{testLog(t)}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kids, _, err := c.Children(p)
	if err != nil {
		t.Fatalf("children of %s: %v", p, err)
	}
	return kids
}
