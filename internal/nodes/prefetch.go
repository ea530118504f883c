package nodes

import (
	"context"
	"errors"
	"sync"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

// A steady-state pass is a few quick checks (a stat per cached file and
// listing, a read per held /proc handle), and the same pass on the same
// node makes the same checks, in the same order, every time. Each sent
// alone costs an SSH packet, an encryption and a write on both sides; so
// the connection remembers, per pass shape, the checks the last pass of
// that shape made, and when a pass makes the first of them it sends all of
// them in one batch, and answers the pass's next checks from that batch.
// A shape is named by its first check (op and path): the trust pass starts
// with its certs.d root, the conntrack pass with its first persisted file.
//
// The batch is a fresh answer from the node, not a cache: it is sent when
// the pass starts checking, and each answer is used once, by the pass that
// asked for it, for the same op on the same path. A pass that changes
// anything on the node (a write, chmod, remove, symlink or command) makes
// every pass on the connection drop what it has not used yet: their later
// checks may be of what it changed, and go out one by one as before. Checks the previous pass did not make go out
// alone too, and the next pass of the shape includes them.

// checkOp is a kind of quick check.
type checkOp uint8

const (
	checkStat  checkOp = iota + 1 // STAT: ReadFile's and ReadDir's quick check
	checkLstat                    // LSTAT: Stat
	checkHeld                     // READ at 0 on a held /proc/sys handle
)

type check struct {
	op   checkOp
	path string
}

// Bounds on what a connection remembers: a shape's checks beyond
// maxShapeChecks go out alone, and past maxShapes the shapes are forgotten
// and learnt again.
const (
	maxShapeChecks = 64
	maxShapes      = 16
)

// passShapes are the check sequences of the last pass of each shape.
type passShapes struct {
	mu sync.Mutex
	m  map[check][]check
}

func (p *passShapes) get(first check) []check {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[first]
}

func (p *passShapes) put(first check, seq []check) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(seq) < 2 {
		delete(p.m, first) // nothing to batch
		return
	}
	if p.m == nil || len(p.m) >= maxShapes && p.m[first] == nil {
		p.m = map[check][]check{}
	}
	p.m[first] = seq
}

// passChecks is one pass's record of its checks and its prefetched
// answers. Its methods are safe on a nil receiver (no pass: every check
// goes out alone).
type passChecks struct {
	mu      sync.Mutex
	seq     []check // the checks the pass made, in order
	ended   bool
	answers []prefetched
	gen     uint64 // the connection's changes when the answers were asked
}

type prefetched struct {
	check
	req   int // index in the batch
	used  bool
	attrs sftp.Attrs
	held  *heldFile // checkHeld: the handle read
	data  []byte
	err   error
}

// startPass returns the view of s a pass uses.
func (s *sftpConn) startPass() *sftpConn {
	return &sftpConn{sftpSession: s.sftpSession, pass: &passChecks{}}
}

// endPass remembers the pass's checks for the next pass of its shape.
func (s *sftpConn) endPass() {
	p := s.pass
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended, p.answers = true, nil
	if len(p.seq) > 0 {
		s.shapes.put(p.seq[0], p.seq)
	}
}

// changed counts a change a pass makes on the node, before it starts and
// again once it is done: answers asked before either are not used.
func (s *sftpConn) changed() { s.changes.Add(1) }

// Run may change anything on the node.
func (s *sftpConn) Run(ctx context.Context, script string, args ...string) ([]byte, error) {
	s.changed()
	defer s.changed()
	return s.execConn.Run(ctx, script, args...)
}

// take records check c and returns its prefetched answer, when there is
// one. The pass's first check sends the batch of its shape.
func (s *sftpConn) take(c check) (*prefetched, error) {
	p := s.pass
	if p == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return nil, nil
	}
	if len(p.seq) == 0 {
		shape := s.shapes.get(c)
		p.seq = make([]check, 0, max(len(shape), 4))
		p.seq = append(p.seq, c)
		if err := s.prefetch(shape); err != nil {
			return nil, err
		}
	} else if len(p.seq) < maxShapeChecks {
		p.seq = append(p.seq, c)
	}
	if p.answers != nil && s.changes.Load() != p.gen {
		p.answers = nil // something changed on the node since
	}
	for i := range p.answers {
		a := &p.answers[i]
		if !a.used && a.check == c {
			a.used = true
			return a, nil
		}
	}
	return nil, nil
}

// prefetch sends seq as one batch and keeps the answers. Called with
// s.pass.mu held; the error is the session's.
func (s *sftpConn) prefetch(seq []check) error {
	if len(seq) < 2 {
		return nil
	}
	gen := s.changes.Load()
	b := s.sc.NewBatch()
	b.Grow(len(seq))
	answers := make([]prefetched, 0, len(seq))
	for _, c := range seq {
		a := prefetched{check: c}
		switch c.op {
		case checkStat:
			a.req = b.Stat(c.path)
		case checkLstat:
			a.req = b.Lstat(c.path)
		case checkHeld:
			h := s.held.get(c.path)
			if h == nil {
				continue
			}
			a.held, a.data = h, make([]byte, len(h.last))
			a.req = b.ReadAt(h.f, a.data, 0)
		}
		answers = append(answers, a)
	}
	if err := s.sc.Do(b); err != nil {
		return err
	}
	for i := range answers {
		a := &answers[i]
		if a.op == checkHeld {
			n, err := b.Read(a.req)
			a.data, a.err = a.data[:n], err
			continue
		}
		a.attrs, a.err = b.Attrs(a.req)
	}
	s.pass.answers, s.pass.gen = answers, gen
	return nil
}

// quickStat is a STAT (op checkStat) or LSTAT (checkLstat) of p, answered
// from the pass's batch when it holds one.
func (s *sftpConn) quickStat(op checkOp, p string) (sftp.Attrs, error) {
	a, err := s.take(check{op, p})
	if err != nil {
		return sftp.Attrs{}, err
	}
	if a != nil {
		return a.attrs, a.err
	}
	if op == checkLstat {
		return s.sc.Lstat(p)
	}
	return s.sc.Stat(p)
}

// quickRead reads len(h.last) bytes at offset 0 of held file h: the whole
// value when it has not changed. A short read is an error.
func (s *sftpConn) quickRead(p string, h *heldFile) ([]byte, error) {
	a, err := s.take(check{checkHeld, p})
	if err != nil {
		return nil, err
	}
	if a != nil && a.held == h {
		if a.err == nil && len(a.data) < len(h.last) {
			return nil, errShortRead
		}
		return a.data, a.err
	}
	buf := make([]byte, len(h.last))
	n, err := h.f.ReadAt(buf, 0)
	if err == nil && n < len(buf) {
		err = errShortRead
	}
	return buf[:n], err
}

var errShortRead = errors.New("short read")
