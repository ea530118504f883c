// Package sftp is a synchronous SFTP version 3 client for OpenSSH's
// sftp-server. It has no goroutine of its own: the caller writes a request
// (or a batch of them, in one write) and reads the answers, while a mutex
// serialises callers on one connection. A call blocks until the server
// answers; to bound it, close the transport underneath (the call then
// returns an error and the client stays broken).
package sftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"unique"
)

// Client is one SFTP session over a transport (an SSH channel).
type Client struct {
	rw io.ReadWriter

	mu     sync.Mutex
	nextID uint32
	broken error // set once the session cannot be used; guarded by mu

	// extensions: "name=data\n" for each extension the server announced,
	// interned: servers of one OpenSSH version all announce the same.
	extensions unique.Handle[string]

	requests atomic.Uint64
	flushes  atomic.Uint64
}

// maxExtensions bounds the extension list a client keeps; OpenSSH's is
// about 300 bytes.
const maxExtensions = 4096

// NewClient sends INIT over rw and reads the server's VERSION.
func NewClient(rw io.ReadWriter) (*Client, error) {
	c := &Client{rw: rw}
	var e encoder
	e.b = append(e.b, 0, 0, 0, 5, fxpInit, 0, 0, 0, 3)
	if _, err := rw.Write(e.b); err != nil {
		return nil, fmt.Errorf("send sftp init: %w", err)
	}
	c.flushes.Add(1)
	buf := getBuf()
	defer putBuf(buf)
	body, err := readPacket(rw, buf)
	if err != nil {
		return nil, fmt.Errorf("read sftp version: %w", err)
	}
	if body[0] != fxpVersion {
		return nil, protocolErrorf("server answered init with packet type %d, want version (2)", body[0])
	}
	d := decoder{b: body[1:]}
	if v := d.u32(); d.err != nil || v != 3 {
		return nil, protocolErrorf("server speaks sftp version %d, want 3", v)
	}
	var ext strings.Builder
	for len(d.b) > 0 && d.err == nil {
		name, data := d.bytes(), d.bytes()
		if ext.Len()+len(name)+len(data) > maxExtensions {
			continue // kept for the life of the connection: bounded
		}
		ext.Write(name)
		ext.WriteByte('=')
		ext.Write(data)
		ext.WriteByte('\n')
	}
	if d.err != nil {
		return nil, protocolErrorf("malformed version packet: %v", d.err)
	}
	c.extensions = unique.Make(ext.String())
	return c, nil
}

// HasExtension reports whether the server announced extension name, and
// the data it gave for it (the extension's version, for OpenSSH's).
func (c *Client) HasExtension(name string) (string, bool) {
	for line := range strings.Lines(c.extensions.Value()) {
		n, data, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if n == name {
			return data, true
		}
	}
	return "", false
}

// Err is why the session broke (the transport failed or the server broke
// the protocol), or nil while it works. A broken client answers every
// call with this error.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Requests is how many requests the client has sent.
func (c *Client) Requests() uint64 { return c.requests.Load() }

// Flushes is how many writes to the transport the client has made: one
// per request sent alone, one per batch.
func (c *Client) Flushes() uint64 { return c.flushes.Load() }

// Close closes the transport when it is an io.Closer. It does not wait
// for a call in flight: that call's read fails and it returns.
func (c *Client) Close() error {
	if cl, ok := c.rw.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// readBufs hold answers while they are decoded; a buffer goes back after
// each exchange, so an idle connection holds none. Shared by every client
// in the process, like any allocation cache.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return readBufs.Get().(*[]byte) }

// putBuf returns b to the pool unless it grew past one packet (a batch of
// large writes): those go to the garbage collector.
func putBuf(b *[]byte) {
	if cap(*b) > MaxPacket {
		return
	}
	*b = (*b)[:0]
	readBufs.Put(b)
}

// readPacket reads one packet into *buf (grown as needed, up to
// MaxPacket) and returns its body: the type byte and what follows.
func readPacket(r io.Reader, buf *[]byte) ([]byte, error) {
	hdr := (*buf)[:4] // the pooled buffer: a local array would escape
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n < 1 {
		return nil, protocolErrorf("empty packet")
	}
	if n > MaxPacket {
		return nil, protocolErrorf("server sent a %d-byte packet, more than the %d bytes allowed", n, MaxPacket)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %d-byte packet: %w", n, err)
	}
	*buf = b
	return b, nil
}

// call is one request of an exchange and, once answered, its result.
type call struct {
	typ   byte
	idOff int
	dst   []byte // READ: where the data goes

	attrs  Attrs
	n      int    // READ: bytes read into dst
	handle string // OPEN, OPENDIR
	names  []Entry
	vfs    StatVFS
	err    error
}

// exchange sends the requests encoded in e.b (one write) and reads one
// answer per call, in order: sftp-server handles requests one at a time,
// in the order they arrive, and answers each. It returns an error only
// when the session broke; each call's own failure is in its err.
func (c *Client) exchange(e *encoder, calls []call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return c.broken
	}
	first := c.nextID + 1
	for i := range calls {
		binary.BigEndian.PutUint32(e.b[calls[i].idOff:], first+uint32(i))
	}
	c.nextID += uint32(len(calls))
	c.requests.Add(uint64(len(calls)))
	c.flushes.Add(1)
	if _, err := c.rw.Write(e.b); err != nil {
		c.broken = fmt.Errorf("send sftp request: %w", err)
		return c.broken
	}
	buf := getBuf()
	defer putBuf(buf)
	for i := range calls {
		body, err := readPacket(c.rw, buf)
		if err == nil {
			err = calls[i].answer(first+uint32(i), body)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the session ended with requests unanswered
			}
			c.broken = fmt.Errorf("read sftp answer: %w", err)
			return c.broken
		}
	}
	return nil
}

// answer decodes the answer to c, which was sent with id.
func (c *call) answer(id uint32, body []byte) error {
	typ := body[0]
	d := decoder{b: body[1:]}
	got := d.u32()
	if d.err != nil {
		return protocolErrorf("answer of type %d too short for an id", typ)
	}
	if got != id {
		return protocolErrorf("answer for request %d came where the one for request %d was due", got, id)
	}
	if typ == fxpStatus {
		if len(d.b) < 4 {
			return protocolErrorf("status answer too short")
		}
		c.err = statusErr(&d)
		if c.err == nil && !c.statusIsAnswer() {
			return protocolErrorf("request of type %d answered with status OK and no result", c.typ)
		}
		return nil
	}
	want := c.want()
	if typ != want {
		return protocolErrorf("request of type %d answered with packet type %d, want %d", c.typ, typ, want)
	}
	switch typ {
	case fxpAttrs:
		c.attrs = d.attrs()
	case fxpHandle:
		c.handle = string(d.bytes())
	case fxpData:
		data := d.bytes()
		if len(data) > len(c.dst) {
			return protocolErrorf("read answered with %d bytes, %d asked", len(data), len(c.dst))
		}
		c.n = copy(c.dst, data)
	case fxpName:
		c.names = decodeNames(&d)
	case fxpExtendedReply:
		c.vfs = StatVFS{d.u64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64()}
	}
	if d.err != nil {
		return protocolErrorf("malformed answer of type %d: %v", typ, d.err)
	}
	return nil
}

// want is the packet type that answers c's request when it succeeds.
func (c *call) want() byte {
	switch c.typ {
	case fxpStat, fxpLstat, fxpFstat:
		return fxpAttrs
	case fxpOpen, fxpOpendir:
		return fxpHandle
	case fxpRead:
		return fxpData
	case fxpReaddir, fxpReadlink:
		return fxpName
	case extStatVFS:
		return fxpExtendedReply
	}
	return fxpStatus
}

// statusIsAnswer: an OK status is the whole answer to c's request.
func (c *call) statusIsAnswer() bool { return c.want() == fxpStatus }

func decodeNames(d *decoder) []Entry {
	n := d.u32()
	// Each entry takes at least 12 bytes: never allocate for more
	// entries than the packet can hold.
	if d.err != nil || uint64(n) > uint64(len(d.b))/12 {
		d.err = errShort
		return nil
	}
	out := make([]Entry, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		name := d.str()
		d.bytes() // longname
		out = append(out, Entry{Name: name, Attrs: d.attrs()})
	}
	return out
}
