package sftp

import (
	"slices"
	"sync"
)

// Local kinds of the extended requests (all sent as type 200): a call's
// kind says how to read its answer.
const (
	extStatVFS = 250 + iota
	extPosixRename
	extFsync
)

// Batch is several independent requests sent in one write, whose answers
// are read in order by Do. Requests in a batch must not depend on each
// other's results (a READ on a handle opened in the same batch cannot
// name it). Each adder returns the index of its request's result.
type Batch struct {
	c     *Client
	e     encoder
	wbuf  *[]byte // e.b's pooled buffer
	calls []call
	slots *[]call // calls' pooled array, given back by Release
	one   [1]call
}

// callSlots are request slots for batches of several requests: a resync
// round sends one batch of a few checks on every connection, and a slot is
// a few hundred bytes (it has room for any answer). Shared by every client
// in the process, like readBufs.
var callSlots = sync.Pool{New: func() any { return new([]call) }}

// batches are released batches. A batch holds one request's slot inline
// (most exchanges are one request), so each is a few hundred bytes; a
// resync round makes a few per node.
var batches = sync.Pool{New: func() any { return new(Batch) }}

// maxPooledCalls bounds the slots kept for reuse: a larger batch's go to
// the garbage collector.
const maxPooledCalls = 64

// NewBatch returns an empty batch on c. Release gives it back once its
// answers have been read; a batch never released is collected as garbage.
func (c *Client) NewBatch() *Batch {
	b := batches.Get().(*Batch)
	b.c = c
	b.calls = b.one[:0]
	return b
}

// Grow makes room for n more requests without reallocating. On an empty
// batch the room comes from slots other batches gave back (Release).
func (b *Batch) Grow(n int) {
	if cap(b.calls)-len(b.calls) >= n {
		return
	}
	if len(b.calls) == 0 && b.slots == nil && n <= maxPooledCalls {
		b.slots = callSlots.Get().(*[]call)
		b.calls = slices.Grow((*b.slots)[:0], n)
		return
	}
	b.calls = slices.Grow(b.calls, n)
}

// Release gives the batch and its request slots back for other batches.
// Neither the batch nor its answers may be used afterwards.
func (b *Batch) Release() {
	if calls, slots := b.calls, b.slots; slots != nil && cap(calls) <= maxPooledCalls {
		clear(calls[:cap(calls)]) // answers and destinations belong to the caller
		*slots = calls[:0]
		callSlots.Put(slots)
	}
	b.putWbuf() // a batch never sent still holds its buffer
	*b = Batch{}
	batches.Put(b)
}

// Len is how many requests the batch holds.
func (b *Batch) Len() int { return len(b.calls) }

func (b *Batch) add(kind, wire byte) *call {
	if b.wbuf == nil {
		b.wbuf = getBuf()
		b.e.b = *b.wbuf
	}
	b.calls = append(b.calls, call{typ: kind, idOff: b.e.begin(wire)})
	return &b.calls[len(b.calls)-1]
}

func (b *Batch) pathReq(kind byte, p string) int {
	b.add(kind, kind)
	b.e.str(p)
	b.e.end()
	return len(b.calls) - 1
}

// Stat adds a STAT of p (symlinks followed).
func (b *Batch) Stat(p string) int { return b.pathReq(fxpStat, p) }

// Lstat adds an LSTAT of p (a final symlink is not followed).
func (b *Batch) Lstat(p string) int { return b.pathReq(fxpLstat, p) }

// ReadAt adds a READ of up to len(dst) bytes (at most MaxPayload) at off
// on f into dst.
func (b *Batch) ReadAt(f *File, dst []byte, off int64) int {
	if len(dst) > MaxPayload {
		dst = dst[:MaxPayload]
	}
	cl := b.add(fxpRead, fxpRead)
	cl.dst = dst
	b.e.str(f.handle)
	b.e.u64(uint64(off))
	b.e.u32(uint32(len(dst)))
	b.e.end()
	return len(b.calls) - 1
}

// Do sends the batch in one write and reads every answer. The error is
// the session's: each request's own failure is returned by Err, Attrs or
// Read. A batch is sent once.
func (c *Client) Do(b *Batch) error {
	if len(b.calls) == 0 {
		return nil
	}
	err := c.exchange(&b.e, b.calls)
	b.putWbuf()
	return err
}

// putWbuf gives the batch's write buffer (grown as requests were encoded)
// back to the pool, if it holds one.
func (b *Batch) putWbuf() {
	if b.wbuf == nil {
		return
	}
	*b.wbuf = b.e.b
	putBuf(b.wbuf)
	b.wbuf, b.e.b = nil, nil
}

// Err is request i's failure, or nil.
func (b *Batch) Err(i int) error { return b.calls[i].err }

// Attrs is the answer to a Stat or Lstat request.
func (b *Batch) Attrs(i int) (Attrs, error) { return b.calls[i].attrs, b.calls[i].err }

// Read is how many bytes a ReadAt request read; io.EOF at end of file.
func (b *Batch) Read(i int) (int, error) { return b.calls[i].n, b.calls[i].err }
