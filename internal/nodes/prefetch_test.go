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

// The quick checks of a steady-state pass go out as one batch: one write
// per pass on the SFTP channel, with the same answers the checks sent one
// by one got. The batch is asked anew by every pass: a change on the node
// between passes is seen.
func TestSteadyPassIsOneBatch(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
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
	if n := run("steady trust", trust(&third)); n != 1 {
		t.Errorf("a steady trust pass made %d writes on the channel, want 1 batch", n)
	}
	if n := run("steady conntrack", conntrack(&third)); n != 1 {
		t.Errorf("a steady conntrack pass made %d writes on the channel, want 1 batch", n)
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
	twice := func(ctx context.Context, c Conn) error {
		if _, err := c.Stat(ctx, p); err != nil {
			return err
		}
		_, err := c.Stat(ctx, p)
		return err
	}
	must(t, e.Do(ctx, cfg, d.Addr, twice)) // learns the shape: lstat p, lstat p
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
	twice := func(ctx context.Context, c Conn) error {
		if _, err := c.Stat(ctx, p); err != nil {
			return err
		}
		_, err := c.Stat(ctx, p)
		return err
	}
	must(t, e.Do(ctx, cfg, d.Addr, twice))
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
			twice := func(ctx context.Context, c Conn) error {
				if _, err := c.Stat(ctx, p); err != nil {
					return err
				}
				_, err := c.Stat(ctx, p)
				return err
			}
			must(t, e.Do(ctx, cfg, d.Addr, twice))
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
