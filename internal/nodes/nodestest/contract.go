// Package nodestest holds the behaviour every nodes.Conn must have, as
// tests: the executor's SFTP and exec connections run them against real
// sshd nodes, and the in-memory connection the controllers' tests use runs
// them too, so a fake cannot drift from what a node does.
package nodestest

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/registry-operator/registry-operator/internal/nodes"
)

// Do runs fn with a connection to the node under test.
type Do func(ctx context.Context, fn func(ctx context.Context, c nodes.Conn) error) error

// Disk is the node's file system seen from outside the connection under
// test: how the contract prepares files and checks what an operation did.
type Disk interface {
	// TempDir returns a new empty directory on the node.
	TempDir(t *testing.T) string
	ReadFile(path string) ([]byte, error)
	// Perm returns path's permission bits.
	Perm(path string) (fs.FileMode, error)
	Readlink(path string) (string, error)
	// Exists reports whether path names anything (a link is not followed).
	Exists(path string) bool
	WriteFile(path string, data []byte, perm fs.FileMode) error
	MkdirAll(path string) error
}

// FSContract exercises every file operation of a Conn.
func FSContract(t *testing.T, do Do, disk Disk) {
	t.Helper()
	dir := disk.TempDir(t)
	err := do(context.Background(), func(ctx context.Context, c nodes.Conn) error {
		files(ctx, t, c, disk, dir)
		links(ctx, t, c, disk, dir)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// files: missing paths, atomic writes with their mode, chmod, listing,
// in-place writes and removal.
func files(ctx context.Context, t *testing.T, c nodes.Conn, disk Disk, dir string) {
	target := filepath.Join(dir, "certs.d", "reg.example:5000", "ca.crt")
	if _, _, err := c.ReadFile(ctx, target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read missing file: got %v, want fs.ErrNotExist", err)
	}
	if _, err := c.Stat(ctx, target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat missing file: got %v, want fs.ErrNotExist", err)
	}
	if _, err := c.ReadDir(ctx, filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("list missing dir: got %v, want fs.ErrNotExist", err)
	}
	data := []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
	if err := c.WriteFile(ctx, target, data, 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, mode, err := c.ReadFile(ctx, target)
	if err != nil || !bytes.Equal(got, data) || mode != 0o600 {
		t.Errorf("read back: %q %o %v", got, mode, err)
	}
	if err := c.WriteFile(ctx, target, []byte("new\n"), 0o644); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if b, _ := disk.ReadFile(target); string(b) != "new\n" {
		t.Errorf("file on disk = %q", b)
	}
	if p, _ := disk.Perm(target); p != 0o644 {
		t.Errorf("mode on disk = %o, want 644", p)
	}
	if err := c.Chmod(ctx, target, 0o600); err != nil {
		t.Errorf("chmod: %v", err)
	}
	fi, err := c.Stat(ctx, target)
	if err != nil || fi.IsDir || fi.Mode != 0o600 {
		t.Errorf("stat: %+v %v", fi, err)
	}
	ents, err := c.ReadDir(ctx, filepath.Join(dir, "certs.d"))
	if err != nil || len(ents) != 1 || ents[0].Name != "reg.example:5000" || !ents[0].IsDir {
		t.Errorf("list: %+v %v (no temp files may remain)", ents, err)
	}
	if ents, _ := c.ReadDir(ctx, filepath.Dir(target)); len(ents) != 1 {
		t.Errorf("directory holds %+v: temp file left behind", ents)
	}
	live := filepath.Join(dir, "live")
	must(t, disk.WriteFile(live, []byte("0\n"), 0o644))
	if err := c.WriteInPlace(ctx, live, []byte("1\n")); err != nil {
		t.Errorf("write in place: %v", err)
	}
	if b, _ := disk.ReadFile(live); string(b) != "1\n" {
		t.Errorf("in-place file = %q", b)
	}
	if err := c.Remove(ctx, target); err != nil {
		t.Errorf("remove file: %v", err)
	}
	if err := c.Remove(ctx, filepath.Dir(target)); err != nil {
		t.Errorf("remove empty dir: %v", err)
	}
	if disk.Exists(filepath.Dir(target)) {
		t.Errorf("directory %s still there", filepath.Dir(target))
	}
}

// links: symbolic links are created, replaced atomically, read, listed,
// and never followed.
func links(ctx context.Context, t *testing.T, c nodes.Conn, disk Disk, dir string) {
	linkDir := filepath.Join(dir, "links")
	must(t, disk.MkdirAll(linkDir))
	must(t, disk.WriteFile(filepath.Join(linkDir, "a.crt"), []byte("a"), 0o644))
	link := filepath.Join(linkDir, "1a2b3c4d.0")
	if err := c.Symlink(ctx, "a.crt", link); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if err := c.Symlink(ctx, "b.crt", link); err != nil {
		t.Errorf("replace symlink: %v", err)
	}
	if got, err := c.Readlink(ctx, link); err != nil || got != "b.crt" {
		t.Errorf("readlink = %q, %v; want b.crt", got, err)
	}
	if got, _ := disk.Readlink(link); got != "b.crt" {
		t.Errorf("link on disk -> %q", got)
	}
	if _, err := c.Readlink(ctx, filepath.Join(linkDir, "missing.0")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readlink missing: %v, want fs.ErrNotExist", err)
	}
	if _, err := c.Readlink(ctx, filepath.Join(linkDir, "a.crt")); err == nil {
		t.Error("readlink of a regular file succeeded")
	}
	if fi, err := c.Stat(ctx, link); err != nil || !fi.IsLink || fi.IsDir {
		t.Errorf("stat of a dangling link: %+v %v", fi, err)
	}
	ents, err := c.ReadDir(ctx, linkDir)
	kinds := map[string]bool{}
	for _, en := range ents {
		kinds[en.Name] = en.IsLink
	}
	if err != nil || len(ents) != 2 || !kinds["1a2b3c4d.0"] || kinds["a.crt"] {
		t.Errorf("list links: %+v %v (no temp links may remain)", ents, err)
	}
	if err := c.Remove(ctx, link); err != nil {
		t.Errorf("remove link: %v", err)
	}
}

// RunContract checks Run: values reach the script as data, never as
// shell text.
func RunContract(t *testing.T, do Do, disk Disk) {
	t.Helper()
	dir := disk.TempDir(t)
	err := do(context.Background(), func(ctx context.Context, c nodes.Conn) error {
		evil := "a'b\"c $(touch " + dir + "/pwned) `x`; *"
		out, err := c.Run(ctx, `printf '%s|%s' "$1" "$2"`, evil, "")
		if err != nil || string(out) != evil+"|" {
			t.Errorf("run echoed %q, %v", out, err)
		}
		if disk.Exists(filepath.Join(dir, "pwned")) {
			t.Error("an argument was executed by the shell")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// UsageDisk is a Disk that also tells the size and free space of the file
// system holding a path, as statvfs(3) on the node sees them.
type UsageDisk interface {
	Disk
	StatFS(path string) (nodes.FSUsage, error)
}

// usageSlack is how far the free space may move between the connection's
// answer and the disk's: other processes write to the same file system.
// The size may not move at all.
const usageSlack = 256 << 20

// StatVFSContract checks StatVFS: it describes the file system holding the
// path (file or directory) as the disk does, and a missing path is
// fs.ErrNotExist.
func StatVFSContract(t *testing.T, do Do, disk UsageDisk) {
	t.Helper()
	dir := disk.TempDir(t)
	file := filepath.Join(dir, "f")
	must(t, disk.WriteFile(file, []byte("x"), 0o644))
	err := do(context.Background(), func(ctx context.Context, c nodes.Conn) error {
		for _, p := range []string{dir, file} {
			got, err := c.StatVFS(ctx, p)
			if err != nil {
				t.Errorf("statvfs %s: %v", p, err)
				continue
			}
			want, err := disk.StatFS(p)
			must(t, err)
			if got.Size == 0 || got.Size != want.Size {
				t.Errorf("statvfs %s: size %d, want %d", p, got.Size, want.Size)
			}
			if !near(got.Free, want.Free) || !near(got.Avail, want.Avail) {
				t.Errorf("statvfs %s: free %d avail %d, want about %d and %d", p, got.Free, got.Avail, want.Free, want.Avail)
			}
			if got.Avail > got.Free || got.Free > got.Size {
				t.Errorf("statvfs %s: %+v: want avail <= free <= size", p, got)
			}
		}
		if _, err := c.StatVFS(ctx, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("statvfs of a missing path: %v, want fs.ErrNotExist", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func near(a, b uint64) bool { return max(a, b)-min(a, b) <= usageSlack }

// LocalDisk is the local file system: the disk of a test node that runs
// on this machine (an sshd on loopback).
type LocalDisk struct{}

// TempDir implements Disk.
func (LocalDisk) TempDir(t *testing.T) string { return t.TempDir() }

// ReadFile implements Disk.
func (LocalDisk) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// Perm implements Disk.
func (LocalDisk) Perm(p string) (fs.FileMode, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	return st.Mode().Perm(), nil
}

// Readlink implements Disk.
func (LocalDisk) Readlink(p string) (string, error) { return os.Readlink(p) }

// Exists implements Disk.
func (LocalDisk) Exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// WriteFile implements Disk.
func (LocalDisk) WriteFile(p string, data []byte, perm fs.FileMode) error {
	return os.WriteFile(p, data, perm)
}

// StatFS implements UsageDisk with statfs(2).
func (LocalDisk) StatFS(p string) (nodes.FSUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return nodes.FSUsage{}, &fs.PathError{Op: "statfs", Path: p, Err: err}
	}
	bs := uint64(st.Frsize)
	return nodes.FSUsage{Size: bs * st.Blocks, Free: bs * st.Bfree, Avail: bs * st.Bavail}, nil
}

// MkdirAll implements Disk.
func (LocalDisk) MkdirAll(p string) error { return os.MkdirAll(p, 0o755) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
