package nodes

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The quick checks of a steady-state round go out as one batch: the first
// pass on the connection writes once on the SFTP channel for its own
// checks and the other shapes', the next pass within roundWindow writes
// nothing, and both get the answers the checks sent one by one got. The
// batch is asked anew every round: a change on the node between rounds is
// seen.
func TestSteadyPassIsOneBatch(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "certs.d")
	ca := filepath.Join(root, "registry:5000", "ca.crt")
	persisted := filepath.Join(dir, "sysctl.d", "conntrack.conf")
	absent := filepath.Join(dir, "modules-load.d", "conntrack.conf")
	const proc = "/proc/sys/kernel/ostype"
	connect(t, e, cfg, d.Addr)

	type seen struct {
		ents            []string
		ca, conf, value string
		absent          bool
	}
	// Like the trust reconciler: list the root, check the CA, place it.
	trust := func(got *seen) func(context.Context, Conn) error {
		return func(ctx context.Context, c Conn) error {
			ents, err := c.ReadDir(ctx, root)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			got.ents = nil
			for _, e := range ents {
				got.ents = append(got.ents, e.Name)
			}
			b, _, err := c.ReadFile(ctx, ca)
			if errors.Is(err, fs.ErrNotExist) {
				return c.WriteFile(ctx, ca, []byte("CA one\n"), 0o644)
			}
			got.ca = string(b)
			return err
		}
	}
	// Like the conntrack reconciler: two persisted files and a live value.
	conntrack := func(got *seen) func(context.Context, Conn) error {
		return func(ctx context.Context, c Conn) error {
			b, _, err := c.ReadFile(ctx, persisted)
			if errors.Is(err, fs.ErrNotExist) {
				return c.WriteFile(ctx, persisted, []byte("net.netfilter.nf_conntrack_tcp_be_liberal = 1\n"), 0o644)
			}
			if err != nil {
				return err
			}
			got.conf = string(b)
			_, err = c.Stat(ctx, absent)
			got.absent = errors.Is(err, fs.ErrNotExist)
			if err != nil && !got.absent {
				return err
			}
			b, _, err = c.ReadFile(ctx, proc)
			got.value = string(b)
			return err
		}
	}
	flushes := func() uint64 { return e.state(d.Addr).conn.(*sftpConn).sc.Flushes() }
	run := func(name string, fn func(context.Context, Conn) error) uint64 {
		t.Helper()
		before := flushes()
		if err := e.Do(ctx, cfg, d.Addr, fn); err != nil {
			t.Fatalf("%s pass: %v", name, err)
		}
		return flushes() - before
	}

	var first, second, third seen
	run("placing trust", trust(&first))
	run("placing conntrack", conntrack(&first))
	// The operator's own writes dropped the cache entries: this pass reads
	// the files in full and caches them, and opens the held /proc handle.
	run("trust", trust(&second))
	run("conntrack", conntrack(&second))
	// The held handle's read is a check from this pass on: the batch has
	// it from the next.
	run("conntrack with the held handle", conntrack(&second))
	// A resync round: the answers the last batch fetched for the other
	// shape are more than roundWindow old, so the trust pass sends one
	// batch with the checks of both, and the conntrack pass right after
	// takes its answers from it.
	clk.Step(roundWindow)
	if n := run("steady trust", trust(&third)); n != 1 {
		t.Errorf("the first pass of a steady round made %d writes on the channel, want 1 batch", n)
	}
	if n := run("steady conntrack", conntrack(&third)); n != 0 {
		t.Errorf("the second pass of a steady round made %d writes on the channel, want none: the first fetched its checks", n)
	}
	if m := e.state(d.Addr).conn.(*sftpConn).round.m; m != nil {
		t.Errorf("every fetched answer was claimed, yet the connection still holds the round's map (%d entries)", len(m))
	}
	want := seen{ents: []string{"registry:5000"}, ca: "CA one\n",
		conf: "net.netfilter.nf_conntrack_tcp_be_liberal = 1\n", value: "Linux\n", absent: true}
	for i, got := range []seen{second, third} {
		if !slices.Equal(got.ents, want.ents) || got.ca != want.ca || got.conf != want.conf ||
			got.value != want.value || got.absent != want.absent {
			t.Errorf("pass %d saw %+v, want %+v", i+2, got, want)
		}
	}

	// Changes made on the node between passes are seen by the next one.
	must(t, os.WriteFile(ca, []byte("CA two, longer\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(root, "mirror:5001"), 0o755))
	// SFTP has mtimes in whole seconds: keep this change from landing in
	// the second of the listing the cache holds.
	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(root, old, old))
	must(t, os.MkdirAll(filepath.Dir(absent), 0o755))
	must(t, os.WriteFile(absent, []byte("nf_conntrack\n"), 0o644))
	// The next round, roundWindow later: fresh answers.
	clk.Step(roundWindow)
	var fourth seen
	run("trust after changes", trust(&fourth))
	run("conntrack after changes", conntrack(&fourth))
	if fourth.ca != "CA two, longer\n" || !slices.Equal(fourth.ents, []string{"mirror:5001", "registry:5000"}) && !slices.Equal(fourth.ents, []string{"registry:5000", "mirror:5001"}) {
		t.Errorf("after changes on the node, the trust pass saw %q and %v", fourth.ca, fourth.ents)
	}
	if fourth.absent {
		t.Errorf("the conntrack pass still saw %s absent after it was created", absent)
	}
}

// A pass that changes the node drops the answers it has not used: its own
// later check of what it changed is asked anew.
func TestPassChangeDropsPrefetch(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, []byte("x"), 0o644))
	must(t, e.Do(ctx, cfg, d.Addr, statTwice(p))) // learns the shape: lstat p, lstat p
	must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		if _, err := c.Stat(ctx, p); err != nil {
			return err
		}
		if err := c.Remove(ctx, p); err != nil {
			return err
		}
		if _, err := c.Stat(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat after the pass removed %s: %v, want fs.ErrNotExist", p, err)
		}
		return nil
	}))
}

// Each pass has its own answers: a pass on the same connection that runs
// while another is between its checks never uses the other's batch.
func TestPassesDoNotShareAnswers(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, []byte("x"), 0o644))
	must(t, e.Do(ctx, cfg, d.Addr, statTwice(p)))
	must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		if _, err := c.Stat(ctx, p); err != nil { // sends the batch: two answers
			return err
		}
		must(t, os.Remove(p))
		// Another pass, between this one's checks, makes the same check
		// (after one of its own): its answer is fresh, not this pass's
		// second one.
		err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			if _, err := c.Stat(ctx, filepath.Dir(p)); err != nil {
				return err
			}
			_, err := c.Stat(ctx, p)
			return err
		})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the other pass's stat: %v, want fs.ErrNotExist", err)
		}
		return nil
	}))
}

// A change on the node by a command the pass runs, or by another pass on
// the same connection, also drops the answers not used yet.
func TestChangesElsewhereDropPrefetch(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	for name, change := range map[string]func(context.Context, Conn, string) error{
		"command": func(ctx context.Context, c Conn, p string) error {
			_, err := c.Run(ctx, `rm -f -- "$1"`, p)
			return err
		},
		"other pass": func(ctx context.Context, _ Conn, p string) error {
			return e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error { return c.Remove(ctx, p) })
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			must(t, os.WriteFile(p, []byte("x"), 0o644))
			must(t, e.Do(ctx, cfg, d.Addr, statTwice(p)))
			must(t, e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
				if _, err := c.Stat(ctx, p); err != nil {
					return err
				}
				if err := change(ctx, c, p); err != nil {
					return err
				}
				if _, err := c.Stat(ctx, p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("stat after %s removed %s: %v, want fs.ErrNotExist", name, p, err)
				}
				return nil
			}))
		})
	}
}

// Answers one pass's batch fetched for another shape are voided by any
// change on the connection before that pass takes them, and a shape whose
// pass does not come in the round stops being fetched for it.
func TestRoundAnswersVoidedAndDropped(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, clk := newExecutor(t)
	cfg := d.config("root", false)
	ctx := context.Background()
	dir := t.TempDir()
	a1, a2 := filepath.Join(dir, "a1"), filepath.Join(dir, "a2")
	b1, b2 := filepath.Join(dir, "b1"), filepath.Join(dir, "b2")
	for _, p := range []string{a1, a2, b1, b2} {
		must(t, os.WriteFile(p, []byte("old "+filepath.Base(p)+"\n"), 0o644))
	}
	connect(t, e, cfg, d.Addr)
	var got string
	reads := func(p, q string) func(context.Context, Conn) error {
		return func(ctx context.Context, c Conn) error {
			if _, _, err := c.ReadFile(ctx, p); err != nil {
				return err
			}
			b, _, err := c.ReadFile(ctx, q)
			got = string(b)
			return err
		}
	}
	sc := func() *sftpConn { return e.state(d.Addr).conn.(*sftpConn) }
	run := func(fn func(context.Context, Conn) error) (writes, requests uint64) {
		t.Helper()
		f, r := sc().sc.Flushes(), sc().sc.Requests()
		if err := e.Do(ctx, cfg, d.Addr, fn); err != nil {
			t.Fatal(err)
		}
		return sc().sc.Flushes() - f, sc().sc.Requests() - r
	}
	// Learn both shapes and fill the caches.
	for range 2 {
		run(reads(a1, a2))
		run(reads(b1, b2))
		clk.Step(roundWindow)
	}
	// A's batch fetches B's checks too; a command another pass runs on the
	// connection changes b2 before B's pass takes them. The stale stat
	// would match the cached content of b2 and hide the change.
	run(reads(a1, a2))
	if err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		_, err := c.Run(ctx, `printf 'new b2, longer\n' > "$1"`, b2)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if w, _ := run(reads(b1, b2)); w == 0 {
		t.Error("after a change on the connection, B's pass used the answers fetched before it")
	}
	if got != "new b2, longer\n" {
		t.Errorf("B's pass read %q after the write, want the new content", got)
	}

	// B stops coming: after one round whose answers for B went unclaimed,
	// A's batch holds A's two checks only.
	clk.Step(roundWindow)
	run(reads(a1, a2)) // fetches for B; B does not claim
	clk.Step(roundWindow)
	run(reads(a1, a2)) // finds B's answers unclaimed
	clk.Step(roundWindow)
	if _, r := run(reads(a1, a2)); r != 2 {
		t.Errorf("A's batch sent %d requests once B stopped coming, want its own 2", r)
	}
}

// statTwice is a pass that stats p twice: its shape is two checks.
func statTwice(p string) func(context.Context, Conn) error {
	return func(ctx context.Context, c Conn) error {
		if _, err := c.Stat(ctx, p); err != nil {
			return err
		}
		_, err := c.Stat(ctx, p)
		return err
	}
}

// A pass that repeats its shape's sequence records it without a copy
// (testing.AllocsPerRun: none), and one that strays or stops short leaves
// the sequence it made.
func TestPassRecordsShapeWithoutCopy(t *testing.T) {
	a, b, c, x := check{checkStat, "/a"}, check{checkStat, "/b"}, check{checkLstat, "/c"}, check{checkHeld, "/x"}
	shape := []check{a, b, c}
	run := func(seq ...check) []check {
		ss := &sftpSession{}
		ss.shapes.put(a, shape)
		p := passChecks{shape: ss.shapes.get(a)}
		for _, k := range seq {
			p.record(k)
		}
		(&sftpConn{sftpSession: ss, pass: &p}).endPass()
		return ss.shapes.get(a)
	}
	for _, tc := range []struct {
		name      string
		seq, want []check
	}{
		{"same", []check{a, b, c}, shape},
		{"short", []check{a, b}, []check{a, b}},
		{"strays", []check{a, x, c}, []check{a, x, c}},
		{"longer", []check{a, b, c, x}, []check{a, b, c, x}},
	} {
		if got := run(tc.seq...); !slices.Equal(got, tc.want) {
			t.Errorf("%s: remembered %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := run(a, b, c); &got[0] != &shape[0] {
		t.Error("the same sequence was copied")
	}
	allocs := testing.AllocsPerRun(100, func() {
		p := passChecks{shape: shape}
		for _, k := range shape {
			p.record(k)
		}
	})
	if allocs != 0 {
		t.Errorf("repeating the shape allocated %.0f times", allocs)
	}
}
