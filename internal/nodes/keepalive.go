package nodes

import (
	"sync"
	"time"
)

// pollEvery is how often the executor's loop takes what each kept
// connection's node sent unasked (see client.poll). sshd's own keepalive
// (ClientAliveInterval, whole seconds, at least 1) hangs up after
// ClientAliveCountMax unanswered requests, at least one: an answer must
// leave within a second, and half of one leaves room for a busy machine
// while a tick over a thousand connections stays a small cost. x/crypto
// buffers 16 requests and 16 channel opens per connection before its
// reader blocks; no node sends that many in 500 ms unless it means to
// stall its own connection.
const pollEvery = 500 * time.Millisecond

// fullPollEvery is how often a sweep polls every connection, also those
// with nothing queued, to notice the ones x/crypto has closed (poll sees
// their closed channels; their length is 0 like an idle one's). Between
// those sweeps only connections with something queued are polled: at a
// thousand agents the full poll of each is most of a tick's cost, for
// connections a pass (connect polls first) or the next full sweep would
// find ended anyway.
const fullPollEvery = 10 * time.Second

// keepAlive is the executor's one loop for every kept connection: it
// answers what nodes send unasked, notices connections that ended, and
// probes idle ones. A goroutine per connection (ssh.Client's handlers, or
// one select over that connection's requests and channel opens) costs a
// stack of several KB per node for the whole run; the loop costs one, and
// a tick over a thousand idle connections reads three channel lengths
// each (BenchmarkPollIdle), and polls them in full every fullPollEvery.
//
// One goroutine blocking in reflect.Select over every connection's
// channels would answer without a tick's delay, but each wake locks every
// channel and builds the case list: for a thousand connections' 2000
// channels, about 0.8 ms and 139 KB of garbage per request answered, and
// every added or removed connection rebuilds the list.
type keepAlive struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	stop    chan struct{} // nil when no loop runs
	// batch is the loop's reused copy of clients: a tick allocates nothing.
	batch []*client
	// lastFull is when a sweep last polled every connection.
	lastFull time.Time
}

// add registers c and makes sure the loop runs.
func (k *keepAlive) add(c *client) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !c.alive() {
		return // closed before it was added: remove has run
	}
	if k.clients == nil {
		k.clients = map[*client]struct{}{}
	}
	k.clients[c] = struct{}{}
	if k.stop == nil {
		k.stop = make(chan struct{})
		go k.loop(k.stop)
	}
}

func (k *keepAlive) loop(stop <-chan struct{}) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			k.sweep()
		}
	}
}

// sweep is one tick of the loop: it polls the connections with something
// queued, and every fullPollEvery (or when full) all of them, probing then
// each that no pass or probe used for probeAfter (nodes.ssh.keepAlive; 0
// is off), so a dead peer is noticed between passes rather than in the
// middle of one; in steady state the passes themselves show the peer is
// alive.
func (k *keepAlive) sweep() { k.sweepAt(time.Now(), false) }

func (k *keepAlive) sweepAt(now time.Time, full bool) {
	k.mu.Lock()
	batch := k.batch[:0]
	k.batch = nil // this sweep's own while it runs
	for c := range k.clients {
		batch = append(batch, c)
	}
	if full = full || now.Sub(k.lastFull) >= fullPollEvery; full {
		k.lastFull = now
	}
	k.mu.Unlock()
	// Outside the lock: a poll that finds the connection gone closes it,
	// and closing removes it from clients.
	for i, c := range batch {
		batch[i] = nil
		if full || c.queued() {
			c.poll()
		}
		// Probes are due at full sweeps only: a tick touches as little
		// of each client as it can, and a probe up to fullPollEvery late
		// is still a probe of an idle connection.
		if !full || c.keepAliveEvery <= 0 || !c.alive() || now.Sub(time.Unix(0, c.lastUsed.Load())) < c.probeAfter() {
			continue
		}
		if c.probing.CompareAndSwap(false, true) {
			c.touch()    // the probe is a use: the next is due an interval later
			go c.probe() // a silent peer holds its probe for connectTimeout: never the others
		}
	}
	k.mu.Lock()
	k.batch = batch[:0]
	k.mu.Unlock()
}

// remove forgets a closed connection at once: holding it until the next
// sweep would keep its buffers, and `run --once` closes connections by the
// thousand.
func (k *keepAlive) remove(c *client) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.clients, c)
}

// close stops the loop and forgets every connection.
func (k *keepAlive) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stop != nil {
		close(k.stop)
	}
	k.clients, k.stop = nil, nil
}
