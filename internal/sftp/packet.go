package sftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Packet types of SFTP version 3 (draft-ietf-secsh-filexfer-02), the
// version OpenSSH's sftp-server speaks.
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpLstat         = 7
	fxpFstat         = 8
	fxpSetstat       = 9
	fxpFsetstat      = 10
	fxpOpendir       = 11
	fxpReaddir       = 12
	fxpRemove        = 13
	fxpMkdir         = 14
	fxpRmdir         = 15
	fxpStat          = 17
	fxpReadlink      = 19
	fxpSymlink       = 20
	fxpStatus        = 101
	fxpHandle        = 102
	fxpData          = 103
	fxpName          = 104
	fxpAttrs         = 105
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// OPEN flags.
const (
	fxfRead   = 0x01
	fxfWrite  = 0x02
	fxfAppend = 0x04
	fxfCreat  = 0x08
	fxfTrunc  = 0x10
	fxfExcl   = 0x20
)

// Attribute flags.
const (
	attrSize        = 0x1
	attrUIDGID      = 0x2
	attrPermissions = 0x4
	attrACModTime   = 0x8
	attrExtended    = 0x80000000
)

// Limits. MaxPayload is what one READ or WRITE carries: 32 KB is what
// every SFTP server accepts. MaxPacket bounds an answer: sftp-server's own
// limit is 256 KB, and nothing larger is ever allocated for one.
const (
	MaxPayload = 32 << 10
	MaxPacket  = 256<<10 + 1024
)

// errShort is a packet that ends before the fields its type requires.
var errShort = errors.New("packet too short")

// Attrs are a file's attributes as the server reported them; the fields
// whose flag the server did not set are zero.
type Attrs struct {
	Flags        uint32
	Size         uint64
	UID, GID     uint32
	Permissions  uint32 // st_mode: type and permission bits
	Atime, Mtime uint32
}

// Mode is Permissions as an fs.FileMode.
func (a *Attrs) Mode() fs.FileMode {
	m := fs.FileMode(a.Permissions & 0o777)
	switch a.Permissions & 0o170000 {
	case 0o040000:
		m |= fs.ModeDir
	case 0o120000:
		m |= fs.ModeSymlink
	case 0o020000:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		m |= fs.ModeDevice
	case 0o010000:
		m |= fs.ModeNamedPipe
	case 0o140000:
		m |= fs.ModeSocket
	}
	if a.Permissions&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if a.Permissions&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if a.Permissions&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// IsDir reports a directory.
func (a *Attrs) IsDir() bool { return a.Permissions&0o170000 == 0o040000 }

// ModTime is the modification time, in whole seconds as SFTP v3 has it.
func (a *Attrs) ModTime() time.Time { return time.Unix(int64(a.Mtime), 0) }

// FileInfo describes the attributes as an fs.FileInfo named name.
func (a Attrs) FileInfo(name string) fs.FileInfo { return fileInfo{name: name, a: a} }

type fileInfo struct {
	name string
	a    Attrs
}

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return int64(f.a.Size) }
func (f fileInfo) Mode() fs.FileMode  { return f.a.Mode() }
func (f fileInfo) ModTime() time.Time { return f.a.ModTime() }
func (f fileInfo) IsDir() bool        { return f.a.IsDir() }
func (f fileInfo) Sys() any           { return f.a }

// Entry is one name a directory listing returned.
type Entry struct {
	Name  string
	Attrs Attrs
}

// StatVFS is statvfs(3) of a file system, as statvfs@openssh.com reports it.
type StatVFS struct {
	Bsize, Frsize, Blocks, Bfree, Bavail, Files, Ffree, Favail, Fsid, Flag, Namemax uint64
}

// decoder reads fields from a packet body; the first field that does not
// fit sets err and every later one reads as zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// bytes returns a length-prefixed field without copying it.
func (d *decoder) bytes() []byte {
	n := d.u32()
	if d.err != nil || uint64(n) > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) attrs() Attrs {
	var a Attrs
	a.Flags = d.u32()
	if a.Flags&attrSize != 0 {
		a.Size = d.u64()
	}
	if a.Flags&attrUIDGID != 0 {
		a.UID, a.GID = d.u32(), d.u32()
	}
	if a.Flags&attrPermissions != 0 {
		a.Permissions = d.u32()
	}
	if a.Flags&attrACModTime != 0 {
		a.Atime, a.Mtime = d.u32(), d.u32()
	}
	if a.Flags&attrExtended != 0 {
		n := d.u32()
		for i := uint32(0); i < n && d.err == nil; i++ {
			d.bytes()
			d.bytes()
		}
	}
	return a
}

// encoder appends requests to one buffer: a batch is written with one
// call. Each request's id is filled in when the batch is sent.
type encoder struct {
	b     []byte
	start int
}

// begin starts a request of type typ and returns where its id goes.
func (e *encoder) begin(typ byte) int {
	e.start = len(e.b)
	e.b = append(e.b, 0, 0, 0, 0, typ, 0, 0, 0, 0)
	return e.start + 5
}

// end fills in the request's length.
func (e *encoder) end() {
	binary.BigEndian.PutUint32(e.b[e.start:], uint32(len(e.b)-e.start-4))
}

func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

func (e *encoder) str(s string) {
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) data(p []byte) {
	e.u32(uint32(len(p)))
	e.b = append(e.b, p...)
}

// perm appends attributes that carry only permission bits.
func (e *encoder) perm(perm fs.FileMode) {
	e.u32(attrPermissions)
	e.u32(uint32(perm.Perm()))
}

// ProtocolError is an answer that breaks the protocol: the connection
// cannot be used any more.
type ProtocolError struct {
	Msg string
}

func (e *ProtocolError) Error() string { return "sftp protocol error: " + e.Msg }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}
