package sftp

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
)

// single runs a batch of one request, releases it and returns a copy of
// its call; the zero call when the session failed.
func (c *Client) single(b *Batch) (call, error) {
	err := c.Do(b)
	cl := b.calls[0]
	b.Release()
	if err != nil {
		return call{}, err
	}
	return cl, cl.err
}

// pathOp sends one request that names a path and expects a status.
func (c *Client) pathOp(kind byte, p string) error {
	b := c.NewBatch()
	b.pathReq(kind, p)
	_, err := c.single(b)
	return err
}

// Stat returns p's attributes, following symlinks.
func (c *Client) Stat(p string) (Attrs, error) {
	b := c.NewBatch()
	b.Stat(p)
	cl, err := c.single(b)
	if err != nil {
		return Attrs{}, err
	}
	return cl.attrs, nil
}

// Lstat returns p's attributes without following a final symlink.
func (c *Client) Lstat(p string) (Attrs, error) {
	b := c.NewBatch()
	b.Lstat(p)
	cl, err := c.single(b)
	if err != nil {
		return Attrs{}, err
	}
	return cl.attrs, nil
}

// Remove deletes a file or symlink.
func (c *Client) Remove(p string) error { return c.pathOp(fxpRemove, p) }

// RemoveDirectory deletes an empty directory.
func (c *Client) RemoveDirectory(p string) error { return c.pathOp(fxpRmdir, p) }

// Mkdir creates directory p with permission bits perm (the server's
// umask applies, as for mkdir(2)).
func (c *Client) Mkdir(p string, perm fs.FileMode) error {
	b := c.NewBatch()
	b.add(fxpMkdir, fxpMkdir)
	b.e.str(p)
	b.e.perm(perm)
	b.e.end()
	_, err := c.single(b)
	return err
}

// MkdirAll creates p and its missing parents with perm; an existing
// directory is fine.
func (c *Client) MkdirAll(p string, perm fs.FileMode) error {
	st, err := c.Stat(p)
	if err == nil {
		if st.IsDir() {
			return nil
		}
		return &StatusError{Code: StatusFailure, Msg: p + " exists and is not a directory"}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(p); parent != p {
		if err := c.MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := c.Mkdir(p, perm); err != nil {
		// Someone else may have made it meanwhile.
		if st, serr := c.Stat(p); serr == nil && st.IsDir() {
			return nil
		}
		return err
	}
	return nil
}

// Chmod sets p's permission bits.
func (c *Client) Chmod(p string, perm fs.FileMode) error {
	b := c.NewBatch()
	b.add(fxpSetstat, fxpSetstat)
	b.e.str(p)
	b.e.perm(perm)
	b.e.end()
	_, err := c.single(b)
	return err
}

// PosixRename renames oldpath to newpath, replacing newpath atomically
// (posix-rename@openssh.com: rename(2), where plain SFTP RENAME refuses an
// existing target).
func (c *Client) PosixRename(oldpath, newpath string) error {
	b := c.NewBatch()
	b.add(extPosixRename, fxpExtended)
	b.e.str("posix-rename@openssh.com")
	b.e.str(oldpath)
	b.e.str(newpath)
	b.e.end()
	_, err := c.single(b)
	return err
}

// Symlink makes link a symbolic link to target. OpenSSH's sftp-server
// takes the two paths in the reverse of the draft's order (target first,
// then the link; its sftp client sends them so too), and this client
// speaks to it.
func (c *Client) Symlink(target, link string) error {
	b := c.NewBatch()
	b.add(fxpSymlink, fxpSymlink)
	b.e.str(target)
	b.e.str(link)
	b.e.end()
	_, err := c.single(b)
	return err
}

// ReadLink returns the target of symbolic link p.
func (c *Client) ReadLink(p string) (string, error) {
	b := c.NewBatch()
	b.pathReq(fxpReadlink, p)
	cl, err := c.single(b)
	if err != nil {
		return "", err
	}
	if len(cl.names) != 1 {
		return "", protocolErrorf("readlink answered with %d names, want 1", len(cl.names))
	}
	return cl.names[0].Name, nil
}

// StatVFS describes the file system holding p (statvfs@openssh.com).
func (c *Client) StatVFS(p string) (StatVFS, error) {
	b := c.NewBatch()
	b.add(extStatVFS, fxpExtended)
	b.e.str("statvfs@openssh.com")
	b.e.str(p)
	b.e.end()
	cl, err := c.single(b)
	if err != nil {
		return StatVFS{}, err
	}
	return cl.vfs, nil
}

// ReadDir lists directory p (opendir, readdir until EOF, close), without
// "." and "..". sftp-server lstats the entries: links are not followed.
func (c *Client) ReadDir(p string) ([]Entry, error) {
	b := c.NewBatch()
	b.pathReq(fxpOpendir, p)
	cl, err := c.single(b)
	if err != nil {
		return nil, err
	}
	h := &File{c: c, handle: cl.handle}
	var out []Entry
	for {
		b := c.NewBatch()
		b.add(fxpReaddir, fxpReaddir)
		b.e.str(h.handle)
		b.e.end()
		cl, err := c.single(b)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = h.Close()
			return nil, err
		}
		for _, e := range cl.names {
			if e.Name != "." && e.Name != ".." {
				out = append(out, e)
			}
		}
	}
	return out, h.Close()
}

// Open opens p for reading.
func (c *Client) Open(p string) (*File, error) { return c.OpenFile(p, os.O_RDONLY, 0) }

// OpenFile opens p with os.O_* flags. With os.O_CREATE the OPEN request
// carries perm, so a new file has those permission bits (less the
// server's umask) from its creation, never a wider default first.
func (c *Client) OpenFile(p string, flag int, perm fs.FileMode) (*File, error) {
	b := c.NewBatch()
	b.add(fxpOpen, fxpOpen)
	b.e.str(p)
	b.e.u32(openFlags(flag))
	if flag&os.O_CREATE != 0 {
		b.e.perm(perm)
	} else {
		b.e.u32(0)
	}
	b.e.end()
	cl, err := c.single(b)
	if err != nil {
		return nil, err
	}
	return &File{c: c, handle: cl.handle}, nil
}

func openFlags(flag int) uint32 {
	var f uint32
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		f = fxfRead
	case os.O_WRONLY:
		f = fxfWrite
	case os.O_RDWR:
		f = fxfRead | fxfWrite
	}
	if flag&os.O_APPEND != 0 {
		f |= fxfAppend
	}
	if flag&os.O_CREATE != 0 {
		f |= fxfCreat
	}
	if flag&os.O_TRUNC != 0 {
		f |= fxfTrunc
	}
	if flag&os.O_EXCL != 0 {
		f |= fxfExcl
	}
	return f
}
