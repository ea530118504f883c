package nodes

import (
	"io/fs"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

// fullReadEvery bounds how long a file's content is trusted from its
// attributes alone (see sftpConn.ReadFile).
const fullReadEvery = 5 * time.Minute

// fileCache holds what was last read in full from regular files and
// directories on one connection, with the attributes each had then. It
// lives and dies with the connection: a new connection reads everything.
type fileCache struct {
	mu    sync.Mutex
	files map[string]cachedFile
	dirs  map[string]cachedDir
}

// cachedDir is a listing. A directory's mtime changes whenever an entry is
// added, removed or renamed, which covers every change a listing reports
// (names and entry types); entries' own modes are not re-checked.
type cachedDir struct {
	mtime time.Time
	mode  fs.FileMode
	ents  []FileInfo
	read  time.Time
}

type cachedFile struct {
	size  int64
	mtime time.Time
	mode  fs.FileMode // the full mode: type bits and permissions
	perm  fs.FileMode
	data  []byte
	read  time.Time
}

// get returns the cached content of p when st (a fresh stat of p) matches
// what p was when read, and that read is recent enough.
func (c *fileCache) get(p string, st fs.FileInfo, now time.Time) ([]byte, fs.FileMode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.files[p]
	if !ok || e.size != st.Size() || !e.mtime.Equal(st.ModTime()) || e.mode != st.Mode() || now.Sub(e.read) >= fullReadEvery {
		return nil, 0, false
	}
	return slices.Clone(e.data), e.perm, true
}

func (c *fileCache) put(p string, st fs.FileInfo, perm fs.FileMode, data []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[string]cachedFile{}
	}
	c.files[p] = cachedFile{size: st.Size(), mtime: st.ModTime(), mode: st.Mode(), perm: perm, data: slices.Clone(data), read: now}
}

// forget drops p and the listings of its ancestors: the operator is about
// to change p (creating missing parents, too).
func (c *fileCache) forget(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.files, p)
	for d := p; ; d = path.Dir(d) {
		delete(c.dirs, d)
		if d == "/" || d == "." {
			return
		}
	}
}

func (c *fileCache) getDir(p string, st fs.FileInfo, now time.Time) ([]FileInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.dirs[p]
	if !ok || !e.mtime.Equal(st.ModTime()) || e.mode != st.Mode() || now.Sub(e.read) >= fullReadEvery {
		return nil, false
	}
	return slices.Clone(e.ents), true
}

func (c *fileCache) putDir(p string, st fs.FileInfo, ents []FileInfo, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirs == nil {
		c.dirs = map[string]cachedDir{}
	}
	c.dirs[p] = cachedDir{mtime: st.ModTime(), mode: st.Mode(), ents: slices.Clone(ents), read: now}
}

// heldFiles are /proc/sys files kept open on one connection (see
// sftpConn.readProcSys); they close with the connection's SFTP session.
type heldFiles struct {
	mu    sync.Mutex
	files map[string]*heldFile
}

type heldFile struct {
	f    *sftp.File
	last []byte
	mode fs.FileMode
}

func (h *heldFiles) get(p string) *heldFile {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.files[p]
}

func (h *heldFiles) put(p string, f *heldFile) {
	h.mu.Lock()
	old := h.files[p]
	if h.files == nil {
		h.files = map[string]*heldFile{}
	}
	h.files[p] = f
	h.mu.Unlock()
	if old != nil && old != f {
		old.f.Close()
	}
}

func (h *heldFiles) drop(p string) {
	h.mu.Lock()
	old := h.files[p]
	delete(h.files, p)
	h.mu.Unlock()
	if old != nil {
		old.f.Close()
	}
}
