package leader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

const (
	// waitLogEvery paces the "waiting for ZooKeeper" log line.
	waitLogEvery = 30 * time.Second
	// refenceEvery repeats the fence while a fenced run winds down, so work
	// the run started after the first fence is cancelled too.
	refenceEvery  = 100 * time.Millisecond
	retryDelay    = 250 * time.Millisecond
	maxRetryDelay = 30 * time.Second
)

// LeadEndedError is returned by Run when the leading run returned while
// this instance still led: there is nothing left to lead with.
type LeadEndedError struct{ Err error }

func (e *LeadEndedError) Error() string {
	if e.Err == nil {
		return "the leading run ended by itself"
	}
	return "the leading run ended: " + e.Err.Error()
}

func (e *LeadEndedError) Unwrap() error { return e.Err }

// Run campaigns until ctx is done. Each time this instance wins, lead runs
// with a context that is cancelled when the term ends; fence is called
// first, the moment leadership is in doubt, and must cancel in-flight work
// without grace (manager.Fence). A new term starts only after the previous
// lead call returned. When ctx is done Run fences, waits for lead to return
// and deletes its candidate znode at once, so the next instance takes over
// without waiting for the session to expire. Run returns nil then, or a
// *LeadEndedError when lead returned on its own.
func (e *Elector) Run(ctx context.Context, lead func(context.Context) error, fence func()) error {
	if fence == nil {
		fence = func() {}
	}
	defer e.release()
	failures := 0
	for {
		gen, ok := e.awaitSession(ctx)
		if !ok {
			return nil
		}
		err := e.campaign(ctx, gen, lead, fence)
		var ended *LeadEndedError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ended):
			return err
		case errors.Is(err, errSuspended):
			// awaitSession logs and reports it.
			failures = 0
			continue
		case errors.Is(err, errNodeGone):
			failures = 0
		case !e.sameSession(gen):
			// A call failed because the session went: awaitSession reports it.
			failures = 0
			continue
		case err != nil:
			// Persistent errors (a credential without create permission on
			// the path) back off so the log stays readable; an error after
			// standing in the election starts the count afresh.
			if e.Ready() {
				failures = 0
			}
			failures++
			e.setReady(false, "not in the election: "+err.Error())
			e.cfg.Log.Info("election interrupted, retrying", "path", e.cfg.Path, "reason", err.Error(), "attempt", failures)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff(failures)):
		}
	}
}

func backoff(failures int) time.Duration {
	d := retryDelay
	for range min(failures, 8) {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// awaitSession blocks until a session is established and returns its
// generation; false when ctx is done first.
func (e *Elector) awaitSession(ctx context.Context) (uint64, bool) {
	tick := time.NewTicker(waitLogEvery)
	defer tick.Stop()
	logNow := true
	for {
		e.mu.Lock()
		has, gen, st, reason := e.hasSession, e.sessionGen, e.state, e.reason
		if !has {
			e.ready = false
		}
		e.mu.Unlock()
		if has {
			return gen, true
		}
		if logNow {
			e.cfg.Log.Info("waiting for ZooKeeper, not reconciling", "servers", strings.Join(e.cfg.Servers, ","),
				"state", st.String(), "reason", reason)
			logNow = false
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-e.wake:
		case <-tick.C:
			logNow = true
		}
	}
}

// campaign stands for election in session gen and follows until this
// instance wins (then leads) or something changes that needs a fresh look.
func (e *Elector) campaign(ctx context.Context, gen uint64, lead func(context.Context) error, fence func()) error {
	if err := e.ensureAuth(); err != nil {
		return err
	}
	if err := e.ensurePath(e.cfg.Path, electionACL(e.cfg.Digest)); err != nil {
		return err
	}
	own, err := e.ensureCandidate()
	if err != nil {
		return err
	}
	var following string
	for {
		if !e.sameSession(gen) {
			return errSuspended
		}
		kids, _, err := e.conn.Children(e.cfg.Path)
		if err != nil {
			return fmt.Errorf("list candidates under %s: %w", e.cfg.Path, err)
		}
		cands := candidates(kids)
		idx := slices.Index(cands, path.Base(own))
		if idx < 0 {
			e.clearNode(own)
			return errNodeGone
		}
		e.readLeader(cands[0])
		if idx == 0 {
			return e.leadTerm(ctx, gen, own, lead, fence)
		}
		// Watch only the predecessor: its going away is the one event that
		// can make this instance the lowest, and no other candidate wakes.
		pred := path.Join(e.cfg.Path, cands[idx-1])
		ok, _, w, err := e.conn.ExistsW(pred)
		if err != nil {
			return fmt.Errorf("watch candidate %s: %w", pred, err)
		}
		if !ok {
			continue
		}
		ld := e.Leader().String()
		e.setReady(true, "following "+ld)
		if ld != following {
			following = ld
			e.cfg.Log.Info("following", "leader", ld, "node", own, "watching", pred)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w:
		case <-e.wake:
		case <-time.After(e.cfg.SessionTimeout):
			// Refresh who leads for the status page, without a watch on the
			// leader's znode (that would wake every follower at once).
		}
	}
}

// ensureCandidate returns the own candidate znode of the current session,
// creating it when there is none.
func (e *Elector) ensureCandidate() (string, error) {
	sid := e.conn.SessionID()
	e.mu.Lock()
	own, sess := e.node, e.nodeSession
	e.mu.Unlock()
	if own != "" && sess == sid {
		ok, st, err := e.conn.Exists(own)
		if err != nil {
			return "", fmt.Errorf("check candidate %s: %w", own, err)
		}
		if ok && st.EphemeralOwner == sid {
			return own, nil
		}
	}
	// A create whose reply was lost to a disconnect leaves a znode of this
	// session behind; find it by name rather than stand twice.
	kids, _, err := e.conn.Children(e.cfg.Path)
	if err != nil {
		return "", fmt.Errorf("list candidates under %s: %w", e.cfg.Path, err)
	}
	var mine []string
	for _, k := range candidates(kids) {
		if strings.HasPrefix(k, e.prefix) {
			mine = append(mine, path.Join(e.cfg.Path, k))
		}
	}
	if len(mine) > 0 {
		for _, extra := range mine[1:] {
			_ = e.conn.Delete(extra, -1) // a duplicate only delays our own turn
		}
		e.setNode(mine[0], sid)
		return mine[0], nil
	}
	p, err := e.conn.Create(path.Join(e.cfg.Path, e.prefix), encodeIdentity(e.cfg.Self),
		zk.FlagEphemeral|zk.FlagSequence, electionACL(e.cfg.Digest))
	if err != nil {
		return "", fmt.Errorf("create candidate under %s: %w", e.cfg.Path, err)
	}
	e.setNode(p, sid)
	return p, nil
}

func (e *Elector) setNode(p string, sid int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.node, e.nodeSession = p, sid
}

func (e *Elector) clearNode(p string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.node == p {
		e.node = ""
	}
}

func (e *Elector) readLeader(name string) {
	b, _, err := e.conn.Get(path.Join(e.cfg.Path, name))
	if err != nil {
		return // gone or unreachable: the next look decides
	}
	id, err := decodeIdentity(b)
	if err != nil {
		id = Identity{Host: "unreadable candidate " + name}
	}
	e.mu.Lock()
	e.leader = id
	e.mu.Unlock()
}

// candidates keeps the children that are candidates ("...-n_<seq>") and
// sorts them by sequence number, the order ZooKeeper created them in.
func candidates(kids []string) []string {
	var out []string
	for _, k := range kids {
		if _, ok := seqOf(k); ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		sa, _ := seqOf(a)
		sb, _ := seqOf(b)
		return cmp.Or(cmp.Compare(sa, sb), strings.Compare(a, b))
	})
	return out
}

func seqOf(name string) (int64, bool) {
	i := strings.LastIndex(name, "-n_")
	if i < 0 || len(name)-i-3 != 10 {
		return 0, false
	}
	n, err := strconv.ParseInt(name[i+3:], 10, 64)
	return n, err == nil
}
