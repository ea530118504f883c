package nodes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

// sftpConn serves passes over the node's persistent SFTP channel. The
// executor keeps one per connection, outside any pass; each pass gets its
// own view of it (startPass), which carries that pass's prefetched
// answers (see prefetch.go) and shares everything else.
type sftpConn struct {
	*sftpSession
	pass *passChecks // nil outside a pass
}

// sftpSession is what the passes on one connection share.
type sftpSession struct {
	*execConn
	sc     *sftp.Client
	now    func() time.Time
	cache  fileCache
	held   heldFiles
	shapes passShapes
	round  roundAnswers
	// changes: see sftpConn.changed.
	changes atomic.Uint64
}

func newSFTPConn(ex *execConn, sc *sftp.Client, now func() time.Time) *sftpConn {
	return &sftpConn{sftpSession: &sftpSession{execConn: ex, sc: sc, now: now}}
}

// op runs SFTP requests bounded by commandTimeout and ctx. A request
// cannot be cancelled once sent (the client reads its answer in the
// caller), so a timeout closes the connection: the blocked request
// returns and the next pass reconnects.
// The watchdog is not a goroutine per request: a steady-state round makes
// thousands of requests. Within a pass it is the pass's (passWatch: one
// timer for all its ops, which also looks at the pass's context);
// otherwise a context.AfterFunc per op.
func (s *sftpConn) op(ctx context.Context, what, p string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return opErr(s.c.node, what, p, timeoutErr(ctx))
	}
	if w := s.passWatch(ctx); w != nil && w.arm(s.c.cfg.commandTimeout()) {
		err := fn()
		if expired := w.disarm(); expired || ctx.Err() != nil {
			terr := ErrTimeout
			if !expired {
				terr = timeoutErr(ctx)
			}
			return opErr(s.c.node, what, p, terr)
		}
		if err != nil {
			return opErr(s.c.node, what, p, s.translate(err))
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.commandTimeout())
	defer cancel()
	stop := context.AfterFunc(ctx, s.c.closeTimedOut)
	err := fn()
	if !stop() {
		return opErr(s.c.node, what, p, timeoutErr(ctx))
	}
	if err != nil {
		return opErr(s.c.node, what, p, s.translate(err))
	}
	return nil
}

// translate turns a broken channel into a ConnectError so the executor
// reconnects and backs off; file errors pass through.
func (s *sftpConn) translate(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrExist) {
		return err
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return err
	}
	// A session error (the channel ended, or the server broke the
	// protocol) leaves the client unusable.
	if !s.c.alive() || s.sc.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.c.close()
		if s.c.timedOut.Load() {
			err = fmt.Errorf("%w: another request on the connection hung, so it was closed (%v)", ErrTimeout, err)
		}
		return &ConnectError{Node: s.c.node, Err: err}
	}
	return err
}

// ReadFile reads a file. A regular file whose size, mode and modification
// time are what they were when it was last read in full, less than
// fullReadEvery ago, is answered from the connection's cache after one stat
// request, instead of four (open, fstat, read, close): that is most of a
// steady-state pass. An edit that keeps the size and lands in the same
// second as the previous write is therefore seen within fullReadEvery, not
// at once; /proc files (size 0) are always read.
func (s *sftpConn) ReadFile(ctx context.Context, p string) (data []byte, mode fs.FileMode, err error) {
	err = s.op(ctx, "read", p, func() error {
		var cached string
		var hit bool
		cached, hit, data, mode, err = s.read(p)
		if hit {
			data = []byte(cached) // the caller's own: the cache's is shared
		}
		return err
	})
	return data, mode, err
}

// fileMatches implements FileMatches: ReadFile's requests, compared with
// want where the content is, so a file answered from the cache is not
// copied out of it (every placed file, on every node and round).
func (s *sftpConn) fileMatches(ctx context.Context, p string, want []byte) (same bool, have []byte, mode fs.FileMode, err error) {
	err = s.op(ctx, "read", p, func() error {
		cached, hit, data, m, err := s.read(p)
		mode = m
		switch {
		case err != nil:
			return err
		case hit:
			if same = cached == string(want); !same {
				have = []byte(cached)
			}
		default:
			if same = bytes.Equal(data, want); !same {
				have = data
			}
		}
		return nil
	})
	return same, have, mode, err
}

// read is ReadFile's requests. A cache hit comes back as the cache's
// string (hit), anything else as the bytes read.
func (s *sftpConn) read(p string) (cached string, hit bool, data []byte, mode fs.FileMode, err error) {
	if strings.HasPrefix(p, procSys) {
		data, mode, err = s.readProcSys(p)
		return "", false, data, mode, err
	}
	st, err := s.quickStat(checkStat, p)
	if err != nil {
		return "", false, nil, 0, err
	}
	if st.Mode().IsRegular() && st.Size > 0 {
		if c, m, ok := s.cache.get(p, stampOf(&st), s.now()); ok {
			return c, true, nil, m, nil
		}
	}
	data, mode, err = s.readFull(p)
	return "", false, data, mode, err
}

// procSys files hold one line, regenerated on every read at offset 0.
const procSys = "/proc/sys/"

// readProcSys reads a kernel parameter through a handle kept open across
// passes: when the first len(last) bytes equal the last value read (which
// ends in a newline, and the file holds one line), that one read request
// is the whole check, instead of open, fstat, read, read to EOF, close.
func (s *sftpConn) readProcSys(p string) ([]byte, fs.FileMode, error) {
	h := s.held.get(p)
	if h != nil {
		buf, err := s.quickRead(p, h)
		if err == nil && bytes.Equal(buf, h.last) {
			return buf, h.mode, nil
		}
		if s.sc.Err() != nil {
			return nil, 0, err // the session broke: nothing more to ask
		}
		s.held.drop(p) // changed or broken: read it again in full
	}
	f, err := s.sc.Open(p)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, maxRead+1))
	if err == nil && len(data) > maxRead {
		err = fmt.Errorf("larger than %d bytes", maxRead)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	mode := st.Mode().Perm()
	if len(data) > 0 && data[len(data)-1] == '\n' && bytes.IndexByte(data, '\n') == len(data)-1 {
		s.held.put(p, &heldFile{f: f, last: slices.Clone(data), mode: mode})
	} else {
		f.Close()
	}
	return data, mode, nil
}

// readFull reads p with open, fstat, read, close; the fstat of the open
// handle is what the cache keeps, so the content matches the attributes.
func (s *sftpConn) readFull(p string) ([]byte, fs.FileMode, error) {
	f, err := s.sc.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	mode := st.Mode().Perm()
	if size := int64(st.Size); size > 0 && size <= maxRead && st.Mode().IsRegular() {
		// Exactly size bytes: one read request, no second one to see EOF.
		data := make([]byte, size)
		n, err := f.ReadAt(data, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		data = data[:n]
		if n == int(size) {
			s.cache.put(p, stampOf(&st), mode, data, s.now())
		}
		return data, mode, nil
	}
	// /proc files report size 0: read until EOF.
	data, err := io.ReadAll(io.LimitReader(f, maxRead+1))
	if err == nil && len(data) > maxRead {
		return nil, 0, fmt.Errorf("larger than %d bytes", maxRead)
	}
	return data, mode, err
}

func (s *sftpConn) Stat(ctx context.Context, p string) (fi FileInfo, err error) {
	err = s.op(ctx, "stat", p, func() error {
		st, err := s.quickStat(checkLstat, p)
		if err != nil {
			return err
		}
		fi = FileInfo{Name: path.Base(p), IsDir: st.IsDir(), IsLink: st.Mode()&fs.ModeSymlink != 0, Mode: st.Mode().Perm()}
		return nil
	})
	return fi, err
}

// ReadDir lists dir; like ReadFile, an unchanged directory (same mtime and
// mode, listed less than fullReadEvery ago) costs one stat request instead
// of four (opendir, readdir until EOF, close).
func (s *sftpConn) ReadDir(ctx context.Context, dir string) (out []FileInfo, err error) {
	err = s.op(ctx, "list", dir, func() error {
		st, err := s.quickStat(checkStat, dir)
		if err != nil {
			return err
		}
		fst := stampOf(&st)
		if ents, ok := s.cache.getDir(dir, fst, s.now()); ok {
			out = ents
			return nil
		}
		ents, err := s.sc.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			// sftp-server lstats directory entries: links are not followed.
			out = append(out, FileInfo{Name: e.Name, IsDir: e.Attrs.IsDir(), IsLink: e.Attrs.Mode()&fs.ModeSymlink != 0,
				Mode: e.Attrs.Mode().Perm()})
		}
		s.cache.putDir(dir, fst, out, s.now())
		return nil
	})
	return out, err
}

func (s *sftpConn) WriteFile(ctx context.Context, p string, data []byte, perm fs.FileMode) error {
	defer s.cache.forget(p)
	s.changed()
	defer s.changed()
	return s.op(ctx, "write", p, func() error {
		err := s.writeAtomic(p, data, perm)
		if err != nil {
			return s.diagnose(path.Dir(p), err)
		}
		return nil
	})
}

func (s *sftpConn) writeAtomic(p string, data []byte, perm fs.FileMode) error {
	dir := path.Dir(p)
	if err := s.sc.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	stage, err := s.stage(dir, path.Base(p))
	if err != nil {
		return err
	}
	tmp := path.Join(stage, path.Base(p))
	// Created owner-only, then given perm before any byte is written.
	f, err := s.sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = s.sc.RemoveDirectory(stage)
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			s.unstage(stage, tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil && !errors.Is(err, sftp.ErrUnsupported) {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.sc.PosixRename(tmp, p); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	ok = true
	if err := s.sc.RemoveDirectory(stage); err != nil {
		return fmt.Errorf("%s is in place; remove the empty staging directory %s: %w", p, stage, err)
	}
	return nil
}

// stage creates an empty private directory next to a file about to be
// replaced, for its temp file. The temp file is created 0600 (its OPEN
// carries the mode), but that alone would leave its name in a directory
// others can list and its mode to the server's umask and to whatever a
// local user does with the name; inside a 0700 directory there is nothing
// to open at all: path lookup checks the directory's mode at the time of
// every open, so even a descriptor or watch taken on the directory in the
// instant before its chmod gives no way to the file. The directory is made
// 0700 by its MKDIR and chmodded to exactly 0700 after, whatever the
// server's umask. The directory is on the same
// filesystem, so the rename into place stays atomic. (Starting sftp-server
// with -u 077 would not cover the "sftp" subsystem, which sshd starts, and
// would make the parents MkdirAll creates 0700.)
func (s *sftpConn) stage(dir, base string) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	stage := path.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
	if err := s.sc.Mkdir(stage, 0o700); err != nil {
		return "", err
	}
	if err := s.sc.Chmod(stage, 0o700); err != nil {
		_ = s.sc.RemoveDirectory(stage)
		return "", fmt.Errorf("make staging directory %s private: %w", stage, err)
	}
	return stage, nil
}

// unstage removes a staging directory and the temp entry in it after a
// failed write; the entry may already be gone.
func (s *sftpConn) unstage(stage, tmp string) {
	_ = s.sc.Remove(tmp)
	_ = s.sc.RemoveDirectory(stage)
}

// diagnose names the usual causes of a failed write: sftp-server reports a
// read-only or full filesystem only as a generic "failure".
func (s *sftpConn) diagnose(dir string, err error) error {
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		return err
	}
	for d := dir; ; d = path.Dir(d) {
		vfs, verr := s.sc.StatVFS(d)
		if verr == nil {
			switch {
			case vfs.Flag&0x1 != 0: // ST_RDONLY
				return fmt.Errorf("%w (the filesystem holding %s is mounted read-only)", err, dir)
			case vfs.Favail == 0 || vfs.Bavail*vfs.Frsize < 64<<10:
				return fmt.Errorf("%w (the filesystem holding %s is full)", err, dir)
			}
			return err
		}
		if d == "/" || d == "." {
			return err
		}
	}
}

func (s *sftpConn) WriteInPlace(ctx context.Context, p string, data []byte) error {
	defer s.cache.forget(p)
	defer s.held.drop(p)
	s.changed()
	defer s.changed()
	return s.op(ctx, "write", p, func() error {
		f, err := s.sc.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

func (s *sftpConn) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	defer s.cache.forget(p)
	s.changed()
	defer s.changed()
	return s.op(ctx, "chmod", p, func() error { return s.sc.Chmod(p, perm) })
}

func (s *sftpConn) Remove(ctx context.Context, p string) error {
	defer s.cache.forget(p)
	s.changed()
	defer s.changed()
	return s.op(ctx, "remove", p, func() error { return s.remove(p) })
}

// remove deletes a file or symlink, or else an empty directory: sftp-server
// answers REMOVE of a directory with a generic failure.
func (s *sftpConn) remove(p string) error {
	err := s.sc.Remove(p)
	var se *sftp.StatusError
	if err == nil || !errors.As(err, &se) || se.Code != sftp.StatusFailure {
		return err
	}
	return s.sc.RemoveDirectory(p)
}

func (s *sftpConn) Symlink(ctx context.Context, target, link string) error {
	defer s.cache.forget(link)
	s.changed()
	defer s.changed()
	return s.op(ctx, "symlink", link, func() error {
		// The temp link follows the rule of every temp file: it is made
		// in a private staging directory, never where others can open it.
		stage, err := s.stage(path.Dir(link), path.Base(link))
		if err != nil {
			return s.diagnose(path.Dir(link), err)
		}
		tmp := path.Join(stage, path.Base(link))
		if err := s.sc.Symlink(target, tmp); err != nil {
			s.unstage(stage, tmp)
			return s.diagnose(path.Dir(link), err)
		}
		if err := s.sc.PosixRename(tmp, link); err != nil {
			s.unstage(stage, tmp)
			return fmt.Errorf("rename into place: %w", err)
		}
		if err := s.sc.RemoveDirectory(stage); err != nil {
			return fmt.Errorf("%s is in place; remove the empty staging directory %s: %w", link, stage, err)
		}
		return nil
	})
}

func (s *sftpConn) Readlink(ctx context.Context, p string) (target string, err error) {
	err = s.op(ctx, "readlink", p, func() error {
		t, err := s.sc.ReadLink(p)
		target = t
		return err
	})
	return target, err
}

// statVFSExtension is OpenSSH's SFTP extension behind Client.StatVFS.
const statVFSExtension = "statvfs@openssh.com"

// StatVFS asks the sftp-server; one that lacks OpenSSH's extension is
// asked through the exec fallback instead.
func (s *sftpConn) StatVFS(ctx context.Context, p string) (u FSUsage, err error) {
	if _, ok := s.sc.HasExtension(statVFSExtension); !ok {
		return s.execConn.StatVFS(ctx, p)
	}
	err = s.op(ctx, "statvfs", p, func() error {
		st, err := s.sc.StatVFS(p)
		if err != nil {
			return err
		}
		u = FSUsage{Size: st.Frsize * st.Blocks, Free: st.Frsize * st.Bfree, Avail: st.Frsize * st.Bavail}
		return nil
	})
	return u, err
}
