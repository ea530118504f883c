package nodes

import (
	"bytes"
	"fmt"
	"sync"
)

// maxOutput bounds what one command may send back on stdout and on stderr:
// the largest file a pass reads (maxRead) plus room for the stat line the
// read script prints first. A node that sends more is not running what the
// operator asked for; without the cap it would be buffered here until
// commandTimeout.
const maxOutput = maxRead + 64<<10

// cappedBuffer collects a session's output up to limit bytes. The write that
// would pass the limit fails and calls over once, so the caller can kill the
// session at once rather than wait for the command to end.
type cappedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	limit  int
	stream string // "stdout" or "stderr", for the error
	over   func(error)
	err    error
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.b.Len()+len(p) > c.limit {
		c.err = fmt.Errorf("%w: more than %d bytes on %s", ErrOutputTooLarge, c.limit, c.stream)
		c.over(c.err)
		return 0, c.err
	}
	return c.b.Write(p)
}

// Bytes returns what was collected. Call it once the session's copiers are done.
func (c *cappedBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Bytes()
}

func (c *cappedBuffer) String() string { return string(c.Bytes()) }
