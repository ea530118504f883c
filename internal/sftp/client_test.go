package sftp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

const serverPath = "/usr/lib/openssh/sftp-server"

// pipeRW is a subprocess's stdout and stdin as one transport.
type pipeRW struct {
	io.Reader
	io.WriteCloser
}

// startServer runs OpenSSH's sftp-server over pipes, as uid when non-zero.
func startServer(t *testing.T, uid uint32) *Client {
	t.Helper()
	if _, err := os.Stat(serverPath); err != nil {
		t.Fatalf("OpenSSH's sftp-server is needed: %v", err)
	}
	cmd := exec.Command(serverPath)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	c, err := NewClient(pipeRW{out, in})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFileOperations(t *testing.T) {
	c := startServer(t, 0)
	dir := t.TempDir()
	for _, ext := range []string{"posix-rename@openssh.com", "statvfs@openssh.com", "fsync@openssh.com"} {
		if _, ok := c.HasExtension(ext); !ok {
			t.Errorf("extension %s not announced; got %q", ext, c.extensions.Value())
		}
	}
	if _, ok := c.HasExtension("nonexistent@example.com"); ok {
		t.Error("an extension the server never announced is reported")
	}

	sub := filepath.Join(dir, "a", "b")
	if err := c.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(sub, 0o755); err != nil {
		t.Fatalf("MkdirAll of an existing directory: %v", err)
	}
	p := filepath.Join(sub, "f")
	f, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("new file before any write: %v, %v; want mode 0600 from its creation", st.Mode(), err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80 KB: three WRITEs
	if n, err := f.Write(data); err != nil || n != len(data) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	if err := f.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size != uint64(len(data)) || st.Mode() != 0o640 {
		t.Fatalf("fstat: %+v, %v", st, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file on disk: %d bytes, %v; want the %d written", len(got), err, len(data))
	}

	f, err = c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if n, err := f.ReadAt(got, 0); err != nil || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if n, err := f.ReadAt(make([]byte, 10), int64(len(data))-4); n != 4 || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt across the end: %d, %v; want 4, EOF", n, err)
	}
	if all, err := io.ReadAll(f); err != nil || !bytes.Equal(all, data) {
		t.Fatalf("Read to EOF: %d bytes, %v", len(all), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if err := c.Chmod(p, 0o604); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stat(p)
	if err != nil || st.Mode() != 0o604 || !st.Mode().IsRegular() || st.ModTime().IsZero() {
		t.Fatalf("stat: %+v, %v", st, err)
	}

	// SYMLINK: OpenSSH's order, target first.
	link := filepath.Join(dir, "link")
	if err := c.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != p {
		t.Fatalf("on disk, %s -> %q (%v); want -> %s", link, target, err, p)
	}
	if target, err := c.ReadLink(link); err != nil || target != p {
		t.Fatalf("ReadLink: %q, %v", target, err)
	}
	if st, err := c.Lstat(link); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat of the link: %v, %v", st.Mode(), err)
	}
	if st, err := c.Stat(link); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("stat through the link: %v, %v", st.Mode(), err)
	}

	renamed := filepath.Join(dir, "g")
	if err := os.WriteFile(renamed, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.PosixRename(p, renamed); err != nil {
		t.Fatalf("posix-rename over an existing file: %v", err)
	}

	ents, err := c.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]fs.FileMode{}
	for _, e := range ents {
		names[e.Name] = e.Attrs.Mode()
	}
	if len(names) != 3 || !names["a"].IsDir() || names["link"]&fs.ModeSymlink == 0 || !names["g"].IsRegular() {
		t.Fatalf("listing: %v; want a (dir), link (symlink), g (file)", names)
	}

	vfs, err := c.StatVFS(dir)
	if err != nil || vfs.Frsize == 0 || vfs.Blocks == 0 {
		t.Fatalf("statvfs: %+v, %v", vfs, err)
	}

	if err := c.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveDirectory(sub); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sub); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there after rmdir: %v", sub, err)
	}
	if err := c.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(sub); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("mkdir with 0700: %v, %v", st.Mode(), err)
	}
}

func TestStatusErrors(t *testing.T) {
	c := startServer(t, 0)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := c.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a missing file: %v; want fs.ErrNotExist", err)
	}
	if _, err := c.Open(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing file: %v; want fs.ErrNotExist", err)
	}
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != StatusFailure || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("O_EXCL open of an existing file: %v; want a StatusError with code %d (EEXIST)", err, StatusFailure)
	}
	// The session is still usable after file errors.
	if _, err := c.Stat(p); err != nil {
		t.Fatal(err)
	}
}

func TestPermissionDenied(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run sftp-server as another user")
	}
	c := startServer(t, 65534)
	dir := t.TempDir() // 0700, owned by root
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(filepath.Join(dir, "x")); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("stat inside another user's 0700 directory: %v; want fs.ErrPermission", err)
	}
	var se *StatusError
	if err := c.Mkdir(filepath.Join(dir, "x"), 0o755); !errors.As(err, &se) || se.Code != StatusPermissionDenied {
		t.Fatalf("mkdir there: %v; want status %d", err, StatusPermissionDenied)
	}
}

func TestBatchAnswersInOrder(t *testing.T) {
	c := startServer(t, 0)
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(small)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs, flushes := c.Requests(), c.Flushes()

	b := c.NewBatch()
	buf := make([]byte, 64)
	iFile := b.Stat(small)
	iMissing := b.Lstat(filepath.Join(dir, "missing"))
	iDir := b.Stat(filepath.Join(dir, "d"))
	iRead := b.ReadAt(f, buf, 0)
	iLink := b.Lstat(filepath.Join(dir, "l"))
	iEOF := b.ReadAt(f, buf, 100)
	if err := c.Do(b); err != nil {
		t.Fatal(err)
	}
	if n := c.Flushes() - flushes; n != 1 {
		t.Errorf("a batch of six took %d writes, want 1", n)
	}
	if n := c.Requests() - reqs; n != 6 {
		t.Errorf("%d requests counted, want 6", n)
	}
	if a, err := b.Attrs(iFile); err != nil || a.Size != 6 || a.Mode() != 0o640 {
		t.Errorf("stat of the file: %+v, %v", a, err)
	}
	if _, err := b.Attrs(iMissing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lstat of the missing file: %v", err)
	}
	if a, err := b.Attrs(iDir); err != nil || a.Mode() != fs.ModeDir|0o711 {
		t.Errorf("stat of the directory: %v, %v", a.Mode(), err)
	}
	if n, err := b.Read(iRead); err != nil || string(buf[:n]) != "hello\n" {
		t.Errorf("read: %q, %v", buf[:n], err)
	}
	if a, err := b.Attrs(iLink); err != nil || a.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("lstat of the link: %v, %v", a.Mode(), err)
	}
	if _, err := b.Read(iEOF); !errors.Is(err, io.EOF) {
		t.Errorf("read past the end: %v; want io.EOF", err)
	}
}

// A released batch's slots serve the next batch without its answers.
func TestBatchSlotsReused(t *testing.T) {
	c := startServer(t, 0)
	dir := t.TempDir()
	present := filepath.Join(dir, "present")
	if err := os.WriteFile(present, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for round := range 3 {
		b := c.NewBatch()
		b.Grow(4)
		var idx []int
		for i := range 4 {
			p := present
			if (i+round)%2 == 1 {
				p = missing
			}
			idx = append(idx, b.Stat(p))
		}
		if err := c.Do(b); err != nil {
			t.Fatal(err)
		}
		for i, j := range idx {
			a, err := b.Attrs(j)
			if (i+round)%2 == 1 {
				if !errors.Is(err, fs.ErrNotExist) || a.Size != 0 {
					t.Errorf("round %d, stat %d of the missing file: %+v, %v", round, i, a, err)
				}
			} else if err != nil || a.Size != 1 {
				t.Errorf("round %d, stat %d of the file: %+v, %v (an earlier batch's answer?)", round, i, a, err)
			}
		}
		b.Release()
		if b.Len() != 0 {
			t.Errorf("a released batch still holds %d requests", b.Len())
		}
	}
}

// sftp-server answers READDIR with at most 100 names: a longer listing
// takes several.
func TestReadDirMany(t *testing.T) {
	c := startServer(t, 0)
	dir := t.TempDir()
	for i := range 250 {
		if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reqs := c.Requests()
	ents, err := c.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 250 {
		t.Fatalf("%d entries, want 250", len(ents))
	}
	if n := c.Requests() - reqs; n < 5 {
		t.Errorf("%d requests for 250 entries: want opendir, several readdirs, close", n)
	}
}

// A quick check is one request; its batch comes from the pool, so a
// steady-state pass of single requests leaves no batch behind per request.
func TestSingleRequestsReuseBatches(t *testing.T) {
	if raceBuild {
		t.Skip("allocation count: the race detector's sync.Pool drops a quarter of what is put back")
	}
	c := startServer(t, 0)
	present := filepath.Join(t.TempDir(), "present")
	if err := os.WriteFile(present, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var statErr error
	allocs := testing.AllocsPerRun(200, func() {
		if a, err := c.Stat(present); err != nil || a.Size != 1 {
			statErr = fmt.Errorf("stat: %+v, %w", a, err)
		}
	})
	if statErr != nil {
		t.Fatal(statErr)
	}
	t.Logf("%.2f allocations per STAT", allocs)
	if allocs >= 1 {
		t.Errorf("%.2f allocations per STAT, want none: a batch per request again?", allocs)
	}
}
