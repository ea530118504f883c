package nodes

import (
	"sync"
	"time"
)

// keepAlive is the executor's one keepalive loop for every kept
// connection. A goroutine per connection, each with its own ticker, would
// cost a goroutine stack and a timer per node for the whole run: at a
// thousand agents that is megabytes for a probe most connections never need.
type keepAlive struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	every   time.Duration // the running loop's interval; 0 when none runs
	stop    chan struct{}
}

// add registers c and makes sure a loop runs at c's interval (nodes.ssh
// keepAlive, which every client dialled under the current spec shares).
// A client with keepalive off is not probed.
func (k *keepAlive) add(c *client) {
	every := c.cfg.KeepAlive
	if every <= 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.clients == nil {
		k.clients = map[*client]struct{}{}
	}
	k.clients[c] = struct{}{}
	if !c.alive() {
		delete(k.clients, c) // closed before it was added: remove has run
		return
	}
	if k.every == every {
		return
	}
	if k.stop != nil {
		close(k.stop)
	}
	k.every, k.stop = every, make(chan struct{})
	go k.loop(every, k.stop)
}

func (k *keepAlive) loop(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
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

// sweep probes every connection no pass used during its keepalive
// interval, so a dead peer is noticed between passes rather than in the
// middle of one; in steady state the passes themselves show the peer is
// alive.
func (k *keepAlive) sweep() {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range k.clients {
		if !c.alive() {
			delete(k.clients, c)
			continue
		}
		if now.Sub(time.Unix(0, c.lastUsed.Load())) < c.cfg.KeepAlive {
			continue // a pass used it since the last tick
		}
		if c.probing.CompareAndSwap(false, true) {
			go c.probe() // a silent peer holds its probe for connectTimeout: never the others
		}
	}
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
	k.clients, k.every, k.stop = nil, 0, nil
}
