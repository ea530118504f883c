package nodes

import (
	"io/fs"
	"path"
	"slices"
	"sync"
	"time"
	"unique"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

// fullReadEvery bounds how long a file's content is trusted from its
// attributes alone (see sftpConn.ReadFile).
const fullReadEvery = 5 * time.Minute

// fileCache holds what was last read in full from regular files and
// directories on one connection, with the attributes each had then. It
// lives and dies with the connection: a new connection reads everything.
//
// A node's reconcilers read a handful of paths, so the entries are slices
// searched in order: a map's buckets cost more than the 640-byte CA they
// hold, once per kept connection. Contents are interned (package unique):
// every node carries the same CA and the same one-line files, so a
// thousand connections hold one copy of each instead of a thousand.
type fileCache struct {
	mu    sync.Mutex
	files []cachedFile
	dirs  []cachedDir
}

// cachedDir is a listing. A directory's mtime changes whenever an entry is
// added, removed or renamed, which covers every change a listing reports
// (names and entry types); entries' own modes are not re-checked.
type cachedDir struct {
	path  string
	mtime int64 // unix nanoseconds
	mode  fs.FileMode
	ents  []FileInfo
	read  int64 // unix nanoseconds
}

type cachedFile struct {
	path  string
	size  int64
	mtime int64       // unix nanoseconds
	mode  fs.FileMode // the full mode: type bits and permissions
	perm  fs.FileMode
	data  unique.Handle[string]
	read  int64 // unix nanoseconds
}

// fileStamp is what the cache compares of a fresh stat: a value, not an
// fs.FileInfo, which would cost an allocation per check.
type fileStamp struct {
	size  int64
	mtime int64 // unix nanoseconds
	mode  fs.FileMode
}

func stampOf(a *sftp.Attrs) fileStamp {
	return fileStamp{size: int64(a.Size), mtime: a.ModTime().UnixNano(), mode: a.Mode()}
}

func fresh(read int64, now time.Time) bool { return now.Sub(time.Unix(0, read)) < fullReadEvery }

func (c *fileCache) file(p string) int {
	return slices.IndexFunc(c.files, func(e cachedFile) bool { return e.path == p })
}

func (c *fileCache) dir(p string) int {
	return slices.IndexFunc(c.dirs, func(e cachedDir) bool { return e.path == p })
}

// get returns the cached content of p when st (a fresh stat of p) matches
// what p was when read, and that read is recent enough. The content is the
// interned string itself, shared by every connection that holds it: a
// caller that needs bytes of its own copies it (ReadFile), one that only
// compares does not (fileMatches).
func (c *fileCache) get(p string, st fileStamp, now time.Time) (string, fs.FileMode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.file(p)
	if i < 0 {
		return "", 0, false
	}
	e := &c.files[i]
	if e.size != st.size || e.mtime != st.mtime || e.mode != st.mode || !fresh(e.read, now) {
		return "", 0, false
	}
	return e.data.Value(), e.perm, true
}

func (c *fileCache) put(p string, st fileStamp, perm fs.FileMode, data []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := cachedFile{path: p, size: st.size, mtime: st.mtime, mode: st.mode, perm: perm,
		data: unique.Make(string(data)), read: now.UnixNano()}
	if i := c.file(p); i >= 0 {
		c.files[i] = e
		return
	}
	c.files = append(c.files, e)
}

// forget drops p and the listings of its ancestors: the operator is about
// to change p (creating missing parents, too).
func (c *fileCache) forget(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = slices.DeleteFunc(c.files, func(e cachedFile) bool { return e.path == p })
	c.dirs = slices.DeleteFunc(c.dirs, func(e cachedDir) bool { return isDirOf(e.path, p) })
}

// isDirOf says whether d is p or one of its ancestors.
func isDirOf(d, p string) bool {
	for a := p; ; a = path.Dir(a) {
		if a == d {
			return true
		}
		if a == "/" || a == "." {
			return false
		}
	}
}

func (c *fileCache) getDir(p string, st fileStamp, now time.Time) ([]FileInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.dir(p)
	if i < 0 {
		return nil, false
	}
	e := &c.dirs[i]
	if e.mtime != st.mtime || e.mode != st.mode || !fresh(e.read, now) {
		return nil, false
	}
	return slices.Clone(e.ents), true
}

func (c *fileCache) putDir(p string, st fileStamp, ents []FileInfo, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := cachedDir{path: p, mtime: st.mtime, mode: st.mode, ents: slices.Clone(ents), read: now.UnixNano()}
	if i := c.dir(p); i >= 0 {
		c.dirs[i] = e
		return
	}
	c.dirs = append(c.dirs, e)
}

// heldFiles are /proc/sys files kept open on one connection (see
// sftpConn.readProcSys); they close with the connection's SFTP session.
// Like fileCache, a short slice searched in order.
type heldFiles struct {
	mu    sync.Mutex
	files []heldEntry
}

type heldEntry struct {
	path string
	f    *heldFile
}

type heldFile struct {
	f    *sftp.File
	last []byte
	mode fs.FileMode
}

func (h *heldFiles) find(p string) int {
	return slices.IndexFunc(h.files, func(e heldEntry) bool { return e.path == p })
}

func (h *heldFiles) get(p string) *heldFile {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.find(p); i >= 0 {
		return h.files[i].f
	}
	return nil
}

func (h *heldFiles) put(p string, f *heldFile) {
	h.mu.Lock()
	var old *heldFile
	if i := h.find(p); i >= 0 {
		old = h.files[i].f
		h.files[i].f = f
	} else {
		h.files = append(h.files, heldEntry{path: p, f: f})
	}
	h.mu.Unlock()
	if old != nil && old != f {
		old.f.Close()
	}
}

func (h *heldFiles) drop(p string) {
	h.mu.Lock()
	var old *heldFile
	if i := h.find(p); i >= 0 {
		old = h.files[i].f
		h.files = slices.Delete(h.files, i, i+1)
	}
	h.mu.Unlock()
	if old != nil {
		old.f.Close()
	}
}
