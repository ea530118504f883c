package nodes

import (
	"bytes"
	"context"
	"io/fs"
)

// Conn is what a pass may do on one node. Reads and writes go over the
// node's persistent SFTP channel when it has one (no process starts on the
// node); otherwise, and for Run, over one exec session per call.
type Conn interface {
	// Node is the node's address, as discovery reported it.
	Node() string
	// ReadFile returns a file's content and permission bits; the error
	// wraps fs.ErrNotExist when the file is absent.
	ReadFile(ctx context.Context, path string) ([]byte, fs.FileMode, error)
	// Stat describes path without following a final symlink; fs.ErrNotExist when absent.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// ReadDir lists a directory; fs.ErrNotExist when absent.
	ReadDir(ctx context.Context, dir string) ([]FileInfo, error)
	// WriteFile replaces path atomically: parents are created (0755), the
	// data goes to a temp file in a fresh 0700 directory beside path, so no
	// other user can open it at any moment; it gets perm before any byte is
	// written, is fsynced and renamed over path, so a reader sees the old
	// file or the new one, never a part.
	WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error
	// WriteInPlace writes an existing file without replacing it: the way to
	// set a value under /proc/sys.
	WriteInPlace(ctx context.Context, path string, data []byte) error
	// Chmod sets permission bits.
	Chmod(ctx context.Context, path string, perm fs.FileMode) error
	// Remove deletes a file, a symlink or an empty directory.
	Remove(ctx context.Context, path string) error
	// Symlink makes link a symbolic link to target, replacing whatever
	// link held atomically (a temp link, made in a fresh 0700 directory
	// beside link like WriteFile's temp file, renamed over it), so a reader
	// never finds the name missing.
	Symlink(ctx context.Context, target, link string) error
	// Readlink returns a symbolic link's target; fs.ErrNotExist when absent.
	Readlink(ctx context.Context, path string) (string, error)
	// StatVFS describes the file system that holds path (statvfs(3)); the
	// error wraps fs.ErrNotExist when path is absent. Over SFTP it is one
	// statvfs@openssh.com request: no process starts on the node.
	StatVFS(ctx context.Context, path string) (FSUsage, error)
	// Run executes a fixed POSIX sh script; args reach it as "$1"... and are
	// never parsed as shell text. It starts a process on the node.
	Run(ctx context.Context, script string, args ...string) ([]byte, error)
}

// FileInfo is the part of a file's metadata a pass needs.
type FileInfo struct {
	Name  string
	IsDir bool
	// IsLink: a symbolic link (never followed: IsDir is false for it).
	IsLink bool
	Mode   fs.FileMode // permission bits
}

// FSUsage is a file system's size and free space, in bytes.
type FSUsage struct {
	Size uint64
	// Free counts every free block; Avail those an unprivileged user may
	// take (Free less the blocks reserved for root). Used space is
	// Size - Free, as df counts it.
	Free  uint64
	Avail uint64
}

// maxRead bounds what a pass reads from one file: certificates, keys and
// sysctl files are small; anything larger is not what the operator wrote.
const maxRead = 4 << 20

// AcceptedOnFirstUse reports whether c's host key was taken on trust: it was
// not on record, hostKeyPolicy is acceptNew, and it was recorded when c's
// connection was set up. Such an agent's identity is not certain, so nothing
// secret should go to it over c. c answers true for its whole life; the
// executor closes such a connection as soon as no pass uses it, so the
// next pass dials again, checks the now recorded key and answers false.
// A Conn tells by implementing FirstUseReporter; wrappers (Recording)
// pass the question on. Conns that do not implement it answer false.
func AcceptedOnFirstUse(c Conn) bool {
	t, ok := c.(FirstUseReporter)
	return ok && t.HostKeyAcceptedOnFirstUse()
}

// FirstUseReporter is a Conn that knows how its host key was checked.
type FirstUseReporter interface {
	// HostKeyAcceptedOnFirstUse: see AcceptedOnFirstUse.
	HostKeyAcceptedOnFirstUse() bool
}

// HostKeyAcceptedOnFirstUse implements FirstUseReporter.
func (e *execConn) HostKeyAcceptedOnFirstUse() bool { return e.c.acceptedNew }

// FileMatches reports whether path holds exactly want, and path's
// permission bits: what a pass that keeps a file in place needs from
// ReadFile. The content comes back (have) only when it differs, to name
// the change: over SFTP a file unchanged since it was last read is
// compared in the connection's cache instead of being copied out of it;
// other connections read it. The error is ReadFile's.
func FileMatches(ctx context.Context, c Conn, path string, want []byte) (same bool, have []byte, mode fs.FileMode, err error) {
	if m, ok := c.(fileMatcher); ok {
		return m.fileMatches(ctx, path, want)
	}
	have, mode, err = c.ReadFile(ctx, path)
	if err != nil || bytes.Equal(have, want) {
		return err == nil, nil, mode, err
	}
	return false, have, mode, nil
}

// fileMatcher is a Conn that compares a file without handing it out.
type fileMatcher interface {
	fileMatches(ctx context.Context, path string, want []byte) (same bool, have []byte, mode fs.FileMode, err error)
}
