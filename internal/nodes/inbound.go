package nodes

import (
	"time"

	"golang.org/x/crypto/ssh"
)

// maxPolled bounds what one poll takes from a connection: x/crypto buffers
// 16 of each kind, and a node that keeps sending must not hold the loop.
const maxPolled = 32

// keptChannel hands poll the requests of a channel kept across passes. It
// is called before the executor gives the client to the keepalive loop.
func (c *client) keptChannel(reqs <-chan *ssh.Request) {
	c.pollMu.Lock()
	c.chanReqs = reqs
	c.pollMu.Unlock()
}

// queued reports whether the node sent something poll has not taken yet.
// It takes no lock (the three queues are set before the loop has the
// client and never change) and a channel's length is read without the
// channel's: a tick over a thousand idle connections costs a few loads
// each, where locking each client's mutex cost more than the rest of the
// tick together.
//
// While the kept channel is open, only its queue is read: sshd sends its
// keepalive there when a channel is open (as a global request only when
// none is), hostkeys-00@openssh.com needs no answer, and a channel the
// node opens waits for the next full sweep to be rejected.
func (c *client) queued() bool {
	if c.chanReqs != nil && !c.chanReqsClosed.Load() {
		return len(c.chanReqs) > 0
	}
	return len(c.reqs) > 0 || len(c.chans) > 0
}

// probeAfter is how long the connection may sit unused before the
// keepalive loop probes it: nodes.ssh.keepAlive, plus a quarter for the
// resync's jitter (up to 10%). Passes that come about every keepAlive
// already show the peer is alive; a probe each time the jitter stretched
// the gap past keepAlive would double what a steady state sends.
func (c *client) probeAfter() time.Duration { return c.keepAliveEvery + c.keepAliveEvery/4 }

// poll takes, without blocking, what the node sent unasked since the last
// poll: global requests and requests on the kept channel are refused, as
// OpenSSH's client refuses what it does not know (sshd's
// keepalive@openssh.com, sent on the first open channel or else as a
// global request, wants an answer; hostkeys-00@openssh.com does not), and
// channel opens are rejected. It closes the client once x/crypto has
// closed the connection's channels, which it does when the connection
// ends. The executor's loop calls it every pollEvery, and connect before
// it trusts a kept connection.
//
// Answering writes to the connection, which blocks while the node does not
// read: that is done in a short-lived goroutine, at most one per
// connection, so one stuck node never holds the loop. While its answers
// are still being written, what the node sends next stays in x/crypto's
// buffers.
func (c *client) poll() {
	if c.answering.Load() {
		return
	}
	c.pollMu.Lock()
	var replies []*ssh.Request
	var opens []ssh.NewChannel
	ended := false
	chanReqs := c.chanReqs
	if c.chanReqsClosed.Load() {
		chanReqs = nil
	}
loop:
	for range maxPolled {
		// Single-case selects: each is a lock-free check of an empty
		// channel, where one select of all would lock all.
		select {
		case r, ok := <-c.reqs:
			if !ok {
				ended = true
				break loop
			}
			if r.WantReply {
				replies = append(replies, r)
			}
			continue
		default:
		}
		select {
		case r, ok := <-chanReqs: // a nil channel is never ready
			if !ok {
				c.chanReqsClosed.Store(true) // the channel closed, not the connection
				chanReqs = nil
				continue
			}
			if r.WantReply {
				replies = append(replies, r)
			}
			continue
		default:
		}
		select {
		case nc, ok := <-c.chans:
			if !ok {
				ended = true
				break loop
			}
			opens = append(opens, nc)
			continue
		default:
		}
		break
	}
	c.pollMu.Unlock()
	if ended {
		c.close()
		return
	}
	if len(replies) > 0 || len(opens) > 0 {
		c.answering.Store(true)
		go c.answer(replies, opens)
	}
}

// answer refuses what poll took. A write that fails means the connection
// is gone, which the next poll notices.
func (c *client) answer(replies []*ssh.Request, opens []ssh.NewChannel) {
	defer c.answering.Store(false)
	for _, r := range replies {
		_ = r.Reply(false, nil)
	}
	for _, nc := range opens {
		_ = nc.Reject(ssh.Prohibited, "the operator accepts no channels")
	}
}
