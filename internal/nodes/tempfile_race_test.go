package nodes

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"unsafe"
)

// raceReaderEnv switches the test binary into the unprivileged reader: the
// race test runs a copy of itself through setpriv as nobody.
const raceReaderEnv = "NODES_RACE_READER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(raceReaderEnv); dir != "" {
		os.Exit(raceReader(dir))
	}
	os.Exit(m.Run())
}

// TestTempFilesNeverReadable places a 0600 key over and over while a
// process of an unprivileged user watches the target directory and opens
// everything that appears in it (and in any directory that appears in it),
// holding each descriptor open until the end, when it reads them all. Not
// one secret byte may reach it, on any write path.
func TestTempFilesNeverReadable(t *testing.T) {
	bin := readerBinary(t)
	for _, tc := range []struct {
		name string
		opts sshdOptions
		user string
		sudo bool
		sftp bool
	}{
		{name: "sftp subsystem", user: "root", sftp: true},
		{name: "sftp-server through sudo", opts: sshdOptions{NoSFTPSubsystem: true}, user: userSudo, sudo: true, sftp: true},
		{name: "exec fallback", opts: sshdOptions{NoSFTPSubsystem: true}, user: "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startSSHD(t, tc.opts)
			e, _, _ := newExecutor(t)
			dir := readerVisibleDir(t)
			r := startRaceReader(t, bin, dir)
			const rounds = 30
			err := e.Do(context.Background(), d.config(tc.user, tc.sudo), d.Addr, func(ctx context.Context, c Conn) error {
				if _, isSFTP := c.(*sftpConn); isSFTP != tc.sftp {
					t.Fatalf("connection uses %T, want sftp=%v", c, tc.sftp)
				}
				if err := c.WriteFile(ctx, filepath.Join(dir, "tls.crt"), []byte("public-certificate\n"), 0o644); err != nil {
					return err
				}
				for i := range rounds {
					key := fmt.Sprintf("-----BEGIN PRIVATE KEY-----\nsecret-%02d\n-----END PRIVATE KEY-----\n", i)
					if err := c.WriteFile(ctx, filepath.Join(dir, "tls.key"), []byte(key), 0o600); err != nil {
						return err
					}
				}
				return c.Symlink(ctx, "tls.key", filepath.Join(dir, "current.key"))
			})
			if err != nil {
				t.Fatal(err)
			}
			out := r.finish(t, dir)

			if !strings.Contains(out, "uid 65534\n") {
				t.Fatalf("reader did not run as nobody:\n%s", out)
			}
			if n := strings.Count(out, "seen tls.key\n"); n != rounds {
				t.Fatalf("reader saw tls.key placed %d times, want %d: it was not watching\n%s", n, rounds, out)
			}
			// The reader can read what is meant to be public: it would have
			// read the key had it been able to open any file holding it.
			if !strings.Contains(out, " "+hex.EncodeToString([]byte("public-certificate\n"))+"\n") {
				t.Fatalf("reader could not read the public certificate: it proves nothing\n%s", out)
			}
			// Informational: how often the reader got a watch on a staging
			// directory in the instant between its mkdir and its chmod.
			t.Logf("reader watched %d directories that appeared", strings.Count(out, "watching "))
			if leaks := secretReads(out); len(leaks) > 0 {
				t.Errorf("an unprivileged process read the private key %d times while it was placed %d times:\n%s",
					len(leaks), rounds, strings.Join(leaks, "\n"))
			}
			st, err := os.Stat(filepath.Join(dir, "tls.key"))
			must(t, err)
			if st.Mode().Perm() != 0o600 {
				t.Errorf("tls.key mode %o, want 600", st.Mode().Perm())
			}
			ents, err := os.ReadDir(dir)
			must(t, err)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, " "); got != "current.key done tls.crt tls.key" {
				t.Errorf("directory holds %q, want no temp files left", got)
			}
		})
	}
}

// secretReads returns the reader's reads that hold key material, decoded.
func secretReads(out string) []string {
	var leaks []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "read" {
			continue
		}
		b, _ := hex.DecodeString(f[2])
		if strings.Contains(string(b), "secret-") {
			leaks = append(leaks, fmt.Sprintf("%s: %q", f[1], b))
		}
	}
	return leaks
}

// readerBinary copies the test binary where nobody may execute it: go test
// builds it in a directory only root can enter.
func readerBinary(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs sshd and a reader as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	self, err := os.Executable()
	must(t, err)
	dir := readerVisibleDir(t)
	bin := filepath.Join(dir, "reader")
	src, err := os.Open(self)
	must(t, err)
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, err)
	must(t, dst.Close())
	return bin
}

// readerVisibleDir is a fresh directory that other users may traverse and
// list but not write, like /etc/privateregistry/certs.
func readerVisibleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{filepath.Dir(dir), dir} {
		must(t, os.Chmod(p, 0o755))
	}
	return dir
}

type raceReaderProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	out   strings.Builder
}

// startRaceReader starts the reader as uid/gid 65534 watching dir and
// waits until its watch is in place.
func startRaceReader(t *testing.T, bin, dir string) *raceReaderProc {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", bin)
	cmd.Env = append(os.Environ(), raceReaderEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	r := &raceReaderProc{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.out.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			r.lines <- sc.Text()
		}
	}()
	r.await(t, "ready")
	return r
}

// await waits for a line from the reader; the reader holds the deadline of
// a hung test, not a timing assertion.
func (r *raceReaderProc) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("reader exited before %q:\n%s", want, r.output())
			}
			if l == want {
				return
			}
		case <-deadline:
			t.Fatalf("reader never said %q:\n%s", want, r.output())
		}
	}
}

func (r *raceReaderProc) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// finish lets the reader drain its events (a file created last is seen
// last), then has it read every descriptor it holds and exit.
func (r *raceReaderProc) finish(t *testing.T, dir string) string {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, "done"), nil, 0o644))
	r.await(t, "seen done")
	must(t, r.stdin.Close())
	for range r.lines {
	}
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("reader: %v\n%s", err, r.output())
	}
	return r.output()
}

// raceReader is the unprivileged process: it watches dir with inotify,
// opens every file that appears there or in a directory that appears
// there, keeps what it could open, and when its stdin closes reads all of
// it. Output lines: "uid N", "ready", "seen NAME", "watching DIR",
// "opened NAME", "read NAME HEX"; names are relative to dir.
func raceReader(dir string) int {
	fmt.Printf("uid %d\n", unix.Geteuid())
	w, err := newWatcher(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		return 1
	}
	fmt.Println("ready")
	go w.run()
	_, _ = io.Copy(io.Discard, os.Stdin)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.held {
		buf := make([]byte, 64<<10)
		n, _ := unix.Pread(h.fd, buf, 0)
		fmt.Printf("read %s %s\n", h.name, hex.EncodeToString(buf[:max(n, 0)]))
	}
	return 0
}

type heldFD struct {
	name string
	fd   int
}

type watchedDir struct {
	fd  int
	rel string // path under the watched directory, "" for itself
}

type watcher struct {
	ino  int
	dirs map[int]watchedDir // by watch descriptor
	mu   sync.Mutex
	held []heldFD
}

func newWatcher(dir string) (*watcher, error) {
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &watcher{ino: ino, dirs: map[int]watchedDir{}}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	if err := w.watch(watchedDir{fd: dfd}); err != nil {
		return nil, err
	}
	return w, nil
}

// watch adds an inotify watch on an open directory; through /proc so the
// watch is on the very directory the descriptor holds.
func (w *watcher) watch(d watchedDir) error {
	wd, err := unix.InotifyAddWatch(w.ino, fmt.Sprintf("/proc/self/fd/%d", d.fd), unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		return err
	}
	w.dirs[wd] = d
	return nil
}

func (w *watcher) run() {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.ino, buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if d, ok := w.dirs[int(ev.Wd)]; ok && name != "" {
				w.grab(d, name)
			}
		}
	}
}

// grab opens name under the directory d: a file is held for reading, a
// directory is watched and what it already holds is grabbed too.
func (w *watcher) grab(d watchedDir, name string) {
	rel := path.Join(d.rel, name)
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	fmt.Printf("seen %s\n", rel)
	if err != nil {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		sub := watchedDir{fd: fd, rel: rel}
		if w.watch(sub) == nil {
			fmt.Printf("watching %s\n", rel)
			w.grabAll(sub)
		}
		return
	}
	fmt.Printf("opened %s\n", rel)
	w.mu.Lock()
	w.held = append(w.held, heldFD{name: rel, fd: fd})
	w.mu.Unlock()
}

func (w *watcher) grabAll(d watchedDir) {
	buf := make([]byte, 8<<10)
	n, err := unix.Getdents(d.fd, buf)
	if err != nil || n <= 0 {
		return
	}
	_, _, names := unix.ParseDirent(buf[:n], -1, nil)
	for _, name := range names {
		w.grab(d, name)
	}
}
