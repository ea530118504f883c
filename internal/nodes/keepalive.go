package nodes

import (
	"sync"
	"time"
)

// pollEvery is how often the executor's loop takes what each kept
// connection's node sent unasked (see client.poll). sshd's own keepalive
// (ClientAliveInterval, whole seconds, at least 1) hangs up after
// ClientAliveCountMax unanswered requests, at least one: an answer must
// leave within a second, and a quarter of one leaves room for a busy
// machine. x/crypto buffers 16 requests and 16 channel opens per
// connection before its reader blocks; no node sends that many in 250 ms
// unless it means to stall its own connection.
const pollEvery = 250 * time.Millisecond

// keepAlive is the executor's one loop for every kept connection: it
// answers what nodes send unasked, notices connections that ended, and
// probes idle ones. A goroutine per connection (ssh.Client's handlers, or
// one select over that connection's requests and channel opens) costs a
// stack of several KB per node for the whole run; the loop costs one, and
// a tick over a thousand idle connections takes about 0.12 ms on a 2-core
// machine (BenchmarkPollIdle): 0.05% of a core at four ticks a second.
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

// sweep polls every connection, then probes each whose keepalive interval
// (nodes.ssh.keepAlive; 0 is off) passed without a pass or a probe using
// it, so a dead peer is noticed between passes rather than in the middle
// of one; in steady state the passes themselves show the peer is alive.
func (k *keepAlive) sweep() {
	k.mu.Lock()
	batch := k.batch[:0]
	k.batch = nil // this sweep's own while it runs
	for c := range k.clients {
		batch = append(batch, c)
	}
	k.mu.Unlock()
	// Outside the lock: a poll that finds the connection gone closes it,
	// and closing removes it from clients.
	now := time.Now()
	for i, c := range batch {
		batch[i] = nil
		c.poll()
		if c.keepAliveEvery <= 0 || !c.alive() || now.Sub(time.Unix(0, c.lastUsed.Load())) < c.keepAliveEvery {
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
