package nodes

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, before any
// sshd starts (each sshd gets a private copy of the mount table).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// StatVFS over either connection answers for the file system that holds
// the path, to the byte: a 64 MiB tmpfs is 64 MiB, and a 1 MiB file takes
// 1 MiB of its free space. Over SFTP no session is opened (no process
// starts on the node).
func TestStatVFSOnTmpfs(t *testing.T) {
	dir := mountTmpfs(t, "64m")
	for _, tc := range []struct {
		name string
		sftp bool
	}{{"sftp", true}, {"exec", false}} {
		t.Run(tc.name, func(t *testing.T) {
			d := startSSHD(t, sshdOptions{NoSFTPSubsystem: !tc.sftp})
			e, m, _ := newExecutor(t)
			cfg := d.config("root", false)
			connect(t, e, cfg, d.Addr)
			statvfs := func() FSUsage {
				t.Helper()
				var u FSUsage
				err := e.Do(context.Background(), cfg, d.Addr, func(ctx context.Context, c Conn) (err error) {
					u, err = c.StatVFS(ctx, dir)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			sessions := testutil.ToFloat64(m.SSHSessions)
			before := statvfs()
			if before.Size != 64<<20 || before.Free != before.Size || before.Avail != before.Free {
				t.Errorf("empty 64 MiB tmpfs: %+v", before)
			}
			f := filepath.Join(dir, "blob")
			must(t, os.WriteFile(f, make([]byte, 1<<20), 0o644))
			defer os.Remove(f)
			after := statvfs()
			if before.Free-after.Free != 1<<20 || after.Size != before.Size {
				t.Errorf("after a 1 MiB file: %+v, before %+v", after, before)
			}
			opened := testutil.ToFloat64(m.SSHSessions) - sessions
			if tc.sftp && opened != 0 {
				t.Errorf("statvfs over SFTP opened %v sessions, want 0", opened)
			}
			if !tc.sftp && opened == 0 {
				t.Error("statvfs over exec opened no session: the test does not see sessions")
			}

			// Report mode reads the node: the same answer, nothing recorded.
			err := e.Do(context.Background(), cfg, d.Addr, func(ctx context.Context, c Conn) error {
				rec := Recording(c)
				u, err := rec.StatVFS(ctx, dir)
				if err == nil && (u.Size != after.Size || u.Free != after.Free || len(rec.Recorded()) != 0) {
					t.Errorf("through Recording: %+v, recorded %q; want %+v and nothing recorded", u, rec.Recorded(), after)
				}
				return err
			})
			must(t, err)
		})
	}
}

func TestParseStatVFS(t *testing.T) {
	u, err := parseStatVFS("4096 100 40 30\n")
	if err != nil || u != (FSUsage{Size: 409600, Free: 163840, Avail: 122880}) {
		t.Errorf("parse: %+v %v", u, err)
	}
	for _, bad := range []string{"", "4096 100 40", "4096 100 40 x", "a b c d", "4096 100 40 30 1"} {
		if _, err := parseStatVFS(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}
