package sftp

import (
	"io"
	"io/fs"
)

// File is an open handle on the server. Read and Write advance its
// offset; ReadAt does not. ReadAt, Stat and Close are safe for concurrent
// use; Read and Write share an unguarded offset and are not.
type File struct {
	c      *Client
	handle string
	off    int64
}

// handleOp sends one request naming the handle and expects a status.
func (f *File) handleOp(kind, wire byte, ext string) error {
	b := f.c.NewBatch()
	b.add(kind, wire)
	if ext != "" {
		b.e.str(ext)
	}
	b.e.str(f.handle)
	b.e.end()
	_, err := f.c.single(b)
	return err
}

// Close closes the handle.
func (f *File) Close() error { return f.handleOp(fxpClose, fxpClose, "") }

// Sync asks the server to fsync the file (fsync@openssh.com); a server
// without the extension answers with an error matching ErrUnsupported.
func (f *File) Sync() error { return f.handleOp(extFsync, fxpExtended, "fsync@openssh.com") }

// Stat returns the open file's attributes (FSTAT).
func (f *File) Stat() (Attrs, error) {
	b := f.c.NewBatch()
	b.add(fxpFstat, fxpFstat)
	b.e.str(f.handle)
	b.e.end()
	cl, err := f.c.single(b)
	if err != nil {
		return Attrs{}, err
	}
	return cl.attrs, nil
}

// Chmod sets the open file's permission bits (FSETSTAT).
func (f *File) Chmod(perm fs.FileMode) error {
	b := f.c.NewBatch()
	b.add(fxpFsetstat, fxpFsetstat)
	b.e.str(f.handle)
	b.e.perm(perm)
	b.e.end()
	_, err := f.c.single(b)
	return err
}

// maxInFlight bounds the READ or WRITE requests of one exchange: 16 of
// 32 KB keep a batch under the SSH channel's window.
const maxInFlight = 16

// ReadAt reads len(p) bytes at off, in exchanges of up to maxInFlight
// READs. Like io.ReaderAt, it returns an error (io.EOF at the end of the
// file) whenever it reads fewer than len(p) bytes.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		b := f.c.NewBatch()
		for o := done; o < len(p) && b.Len() < maxInFlight; o += MaxPayload {
			b.ReadAt(f, p[o:min(o+MaxPayload, len(p))], off+int64(o))
		}
		if err := f.c.Do(b); err != nil {
			return done, err
		}
		for i := range b.Len() {
			n, err := b.Read(i)
			done += n
			if err != nil {
				return done, err
			}
			if n < len(b.calls[i].dst) {
				break // short read: ask again from where it stopped
			}
		}
	}
	return done, nil
}

// Read reads from the file's offset.
func (f *File) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b := f.c.NewBatch()
	b.ReadAt(f, p, f.off)
	cl, err := f.c.single(b)
	f.off += int64(cl.n)
	return cl.n, err
}

// Write writes p at the file's offset, in exchanges of up to maxInFlight
// WRITEs of MaxPayload bytes each.
func (f *File) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) || len(p) == 0 {
		b := f.c.NewBatch()
		start := done
		for o := done; o < len(p) && b.Len() < maxInFlight; o += MaxPayload {
			chunk := p[o:min(o+MaxPayload, len(p))]
			b.add(fxpWrite, fxpWrite)
			b.e.str(f.handle)
			b.e.u64(uint64(f.off + int64(o)))
			b.e.data(chunk)
			b.e.end()
			done = o + len(chunk)
		}
		if b.Len() == 0 {
			return 0, nil
		}
		if err := f.c.Do(b); err != nil {
			return start, err
		}
		for i := range b.Len() {
			if err := b.Err(i); err != nil {
				return start + i*MaxPayload, err
			}
		}
	}
	f.off += int64(done)
	return done, nil
}

var _ io.ReaderAt = (*File)(nil)
