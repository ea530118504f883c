package nodes

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
// checks may be of what it changed, and go out one by one as before.
// The node reconcilers visit a node within moments of each other in a
// resync round, so the first pass there also fetches the other shapes'
// checks, which their passes take within roundWindow (see prefetch): one
// write per node and round, not one per reconciler. Checks the previous pass did not make go out
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
	// solo are shapes whose answers, fetched for them by another pass's
	// batch, went unclaimed: their pass does not come with the others,
	// so they are not fetched for it until it ran again.
	solo map[check]bool
}

// shapeSeq is one remembered shape: its first check and its sequence.
type shapeSeq struct {
	first check
	seq   []check
}

// others returns the shapes other than first that are worth fetching
// along with first's batch, appended to buf.
func (p *passShapes) others(first check, buf []shapeSeq) []shapeSeq {
	p.mu.Lock()
	defer p.mu.Unlock()
	for f, seq := range p.m {
		if f != first && !p.solo[f] {
			buf = append(buf, shapeSeq{f, seq})
		}
	}
	return buf
}

// unclaimed marks shapes whose fetched answers no pass took.
func (p *passShapes) unclaimed(firsts []check) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range firsts {
		if p.solo == nil {
			p.solo = map[check]bool{}
		}
		p.solo[f] = true
	}
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
		p.solo = nil
	}
	p.m[first] = seq
	delete(p.solo, first)
}

// passChecks is one pass's record of its checks and its prefetched
// answers. Its methods are safe on a nil receiver (no pass: every check
// goes out alone).
type passChecks struct {
	watch opWatch
	mu    sync.Mutex
	// The checks the pass made, in order: the first n of shape (the last
	// pass's sequence, which is never changed once remembered) while the
	// pass repeats it, as in every steady round; seq, a copy, from the
	// first check that differs.
	shape   []check
	n       int
	seq     []check
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

// startPass returns the view of s a pass on ctx uses: one allocation
// holding the view and the pass's record.
func (s *sftpConn) startPass(ctx context.Context) *sftpConn {
	v := &passView{conn: sftpConn{sftpSession: s.sftpSession}, checks: passChecks{watch: opWatch{ctx: ctx, conn: s.c}}}
	v.conn.pass = &v.checks
	return &v.conn
}

// passView is a pass's view of a connection with its record.
type passView struct {
	conn   sftpConn
	checks passChecks
}

// endPass remembers the pass's checks for the next pass of its shape.
func (s *sftpConn) endPass() {
	p := s.pass
	p.watch.stop()
	p.mu.Lock()
	p.ended, p.answers = true, nil
	switch {
	case p.seq != nil:
		s.shapes.put(p.seq[0], p.seq)
	case p.n > 0:
		// The same sequence, or the start of it: no copy. put also
		// tells the connection the shape's pass ran (see solo).
		s.shapes.put(p.shape[0], p.shape[:p.n:p.n])
	}
	p.mu.Unlock()
}

// record adds c to the pass's checks. Called with p.mu held.
func (p *passChecks) record(c check) {
	if p.seq == nil && p.n < len(p.shape) && p.shape[p.n] == c {
		p.n++
		return
	}
	if p.seq == nil {
		p.seq = make([]check, p.n, max(len(p.shape), p.n+4))
		copy(p.seq, p.shape)
	}
	if len(p.seq) < maxShapeChecks {
		p.seq = append(p.seq, c)
	}
}

// passWatch is the pass's watchdog for an op on ctx, nil outside a pass or
// for a context other than the pass's (a caller that derived its own).
func (s *sftpConn) passWatch(ctx context.Context) *opWatch {
	if s.pass == nil || s.pass.watch.ctx != ctx {
		return nil
	}
	return &s.pass.watch
}

// opWatch closes the connection when an op of the pass outlives
// commandTimeout or the pass's context: one timer per pass, reset for each
// op. The timer fires at the op's deadline or after watchPoll, whichever
// comes first, and while the op is still in flight looks at the context
// then: a registration on the context (context.AfterFunc) would cost an
// allocation on the pass's context for every pass on every node, where ops
// take milliseconds and the timer almost never fires. A pass runs its ops
// one after another.
type opWatch struct {
	ctx      context.Context
	conn     *client // closed (closeTimedOut) when an op hangs
	timer    *time.Timer
	deadline atomic.Int64 // unix nanoseconds: when the op in flight outlives its timeout
	inFlight atomic.Bool
	expired  atomic.Bool
}

// watchPoll bounds how long an op blocked on a silent node outlives its
// pass's cancellation (shutdown, leadership lost) before the connection
// is closed under it.
const watchPoll = time.Second

// arm starts an op; false when another op of the pass is in flight (a
// pass that runs ops side by side), which then watches its own.
func (w *opWatch) arm(d time.Duration) bool {
	if !w.inFlight.CompareAndSwap(false, true) {
		return false
	}
	w.expired.Store(false)
	w.deadline.Store(time.Now().Add(d).UnixNano())
	if w.timer == nil {
		// Made idle and started by Reset, so that fire, which reads
		// w.timer, never runs before it is set.
		w.timer = time.AfterFunc(math.MaxInt64, w.fire)
	}
	w.timer.Reset(min(d, watchPoll))
	return true
}

func (w *opWatch) fire() {
	if !w.inFlight.Load() {
		return
	}
	left := time.Until(time.Unix(0, w.deadline.Load()))
	switch {
	case left <= 0:
		w.expired.Store(true)
		w.conn.closeTimedOut()
	case w.ctx.Err() != nil:
		w.conn.closeTimedOut()
	default:
		w.timer.Reset(min(left, watchPoll))
	}
}

// disarm ends an op and reports whether it outlived its timeout.
func (w *opWatch) disarm() bool {
	w.inFlight.Store(false)
	if !w.timer.Stop() && time.Now().UnixNano() >= w.deadline.Load() {
		return true // the timer fired at the deadline, maybe still closing
	}
	return w.expired.Load()
}

func (w *opWatch) stop() {
	if w.timer != nil {
		w.timer.Stop()
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
	if p.seq == nil && p.n == 0 {
		p.shape = s.shapes.get(c)
		p.record(c)
		if err := s.prefetch(c, p.shape); err != nil {
			return nil, err
		}
	} else {
		p.record(c)
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

// roundWindow is how long answers a pass's batch fetched for the other
// shapes of its connection wait for their pass. The node reconcilers visit
// a node within moments of each other in a resync round; the first pass
// there fetches the checks of all of them in one batch, and each of the
// others takes its answers as if it had sent that batch itself, a moment
// earlier. Any change on the connection voids them like the pass's own.
const roundWindow = 2 * time.Second

// roundAnswers are the answers fetched for other shapes by the last batch
// on the connection and not claimed yet. A connection has a few shapes, so
// they are a slice searched in order: a map per batch cost more than the
// answers in it.
type roundAnswers struct {
	mu  sync.Mutex
	at  time.Time
	gen uint64
	m   []shapeAnswers
}

// shapeAnswers are the answers fetched for the shape starting with first.
type shapeAnswers struct {
	first   check
	answers []prefetched
}

// claim removes and returns the answers fetched for first.
func (r *roundAnswers) claim(first check) ([]prefetched, bool) {
	for i := range r.m {
		if r.m[i].first == first {
			ans := r.m[i].answers
			r.m = slices.Delete(r.m, i, i+1)
			if len(r.m) == 0 {
				r.m = nil // would hold the answers until the next batch, on every connection
			}
			return ans, true
		}
	}
	return nil, false
}

// prefetch gives the pass starting with first the answers to its shape
// seq: fetched for it by another pass of the round when that is fresh,
// otherwise in one batch with the checks of the connection's other shapes.
// Called with s.pass.mu held; the error is the session's. Holding the
// round's lock through the exchange makes a pass that starts meanwhile on
// the connection wait for the answers instead of sending its own batch
// (it would wait for the SFTP client's lock anyway).
func (s *sftpConn) prefetch(first check, seq []check) error {
	r := &s.round
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := s.changes.Load()
	now := s.now()
	if ans, ok := r.claim(first); ok {
		if r.gen == gen && now.Sub(r.at) < roundWindow {
			s.pass.answers, s.pass.gen = ans, gen
			return nil
		}
	}
	var others []shapeSeq
	if len(seq) > 0 {
		var buf [maxShapes]shapeSeq // on the stack: others does not keep it
		others = s.shapes.others(first, buf[:0])
	}
	if len(seq)+len(others) < 2 {
		return nil
	}
	n := len(seq)
	for _, o := range others {
		n += len(o.seq)
	}
	b := s.sc.NewBatch()
	defer b.Release()
	b.Grow(n)
	// Every shape's answer slots in one allocation, as are the groups.
	slots := make([]prefetched, 0, n)
	own := s.queue(b, seq, &slots)
	var groups []shapeAnswers
	if len(others) > 0 {
		groups = make([]shapeAnswers, len(others))
		for i, o := range others {
			groups[i] = shapeAnswers{o.first, s.queue(b, o.seq, &slots)}
		}
	}
	if err := s.sc.Do(b); err != nil {
		return err
	}
	s.answer(b, own)
	s.pass.answers, s.pass.gen = own, gen
	// What the last round left unclaimed: its pass does not come with
	// the others.
	if len(r.m) > 0 {
		stale := make([]check, len(r.m))
		for i, g := range r.m {
			stale[i] = g.first
		}
		s.shapes.unclaimed(stale)
	}
	for i := range groups {
		s.answer(b, groups[i].answers)
	}
	r.m = groups
	if groups != nil {
		r.at, r.gen = now, gen
	}
	return nil
}

// queue adds seq's checks to b and returns their answer slots, appended
// to *slots (which has room for them: a shape's slots never move).
func (s *sftpConn) queue(b *sftp.Batch, seq []check, slots *[]prefetched) []prefetched {
	first := len(*slots)
	answers := *slots
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
	*slots = answers
	return answers[first:len(answers):len(answers)]
}

// answer fills the slots from b's answers.
func (s *sftpConn) answer(b *sftp.Batch, answers []prefetched) {
	for i := range answers {
		a := &answers[i]
		if a.op == checkHeld {
			n, err := b.Read(a.req)
			a.data, a.err = a.data[:n], err
			continue
		}
		a.attrs, a.err = b.Attrs(a.req)
	}
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
