// Package fileid tells whether a file changed since it was last read,
// from its metadata alone: a stat instead of reading and comparing the
// content.
package fileid

import (
	"os"
	"syscall"
)

// ID identifies a file's state: a file replaced (new inode), written
// (new modification or change time, nanoseconds) or resized shows a new
// ID. The zero ID is no file.
type ID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// Of is the ID of the file fi describes.
func Of(fi os.FileInfo) ID {
	id := ID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino, id.ctime = uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
	return id
}

// Stat is the ID of the file at path (following symlinks); the zero ID
// when it cannot be stat'ed.
func Stat(path string) ID {
	fi, err := os.Stat(path)
	if err != nil {
		return ID{}
	}
	return Of(fi)
}
