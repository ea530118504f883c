package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/registry-operator/registry-operator/internal/pki"
)

func withDigest(d *Digest) instOpt { return func(c *Config) { c.Digest = d } }

// rawConn is a plain client, with the digest credential when auth is set.
func rawConn(t *testing.T, z *zkServer, auth string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{z.addr()}, testSession, zk.WithLogger(zkLogger{testLog(t)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if auth != "" {
		if err := c.AddAuth("digest", []byte(auth)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// idleElector is connected but never campaigns.
func idleElector(t *testing.T, z *zkServer, path string, d *Digest) *Elector {
	t.Helper()
	e, err := New(Config{Servers: []string{z.addr()}, Path: path, SessionTimeout: testSession, Digest: d, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func set(n int) pki.Files {
	v := string(rune('0' + n))
	return pki.Files{pki.FileCACert: []byte("cert " + v), pki.FileCAKey: []byte("key " + v), pki.FileState: []byte(`{"n":` + v + `}`)}
}

func TestPKIStoreDigestACL(t *testing.T) {
	z := startZK(t)
	d := NewDigest("operator", "s3cret")
	rec := newTerms(t)
	path := "/ro/leader"
	a := startInst(t, "a", []string{z.addr()}, path, rec, withDigest(d))
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	ctx := context.Background()
	s := NewPKIStore(a.e)
	if f, err := s.Load(ctx); err != nil || len(f) != 0 {
		t.Fatalf("Load of an empty store = %v, %v; want an empty set", f, err)
	}
	if err := s.Save(ctx, set(1)); err != nil {
		t.Fatal(err)
	}
	if f, err := s.Load(ctx); err != nil || !f.Equal(set(1)) {
		t.Fatalf("Load = %v, %v; want set 1", f, err)
	}

	pp := PKIPath(path)
	for _, auth := range []string{"", "operator:wrong", "other:s3cret"} {
		if _, _, err := rawConn(t, z, auth).Get(pp); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("read of %s with credential %q: err = %v, want ErrNoAuth", pp, auth, err)
		}
	}
	acl, _, err := rawConn(t, z, "operator:s3cret").GetACL(pp)
	if err != nil {
		t.Fatal(err)
	}
	if len(acl) != 1 || acl[0].Scheme != "digest" || !strings.HasPrefix(acl[0].ID, "operator:") {
		t.Errorf("ACL of %s = %+v, want the digest of operator only", pp, acl)
	}
	// The election znodes: anyone may read who leads; only the credential writes.
	if _, err := rawConn(t, z, "").Create(path+"/intruder-n_0000000000", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("candidate created without the credential: err = %v", err)
	}

	wrong := NewPKIStore(idleElector(t, z, path, NewDigest("operator", "wrong")))
	if _, err := wrong.Load(ctx); err == nil || !strings.Contains(err.Error(), "digestFile") {
		t.Errorf("Load with the wrong credential: err = %v, want a denial naming digestFile", err)
	}

	// An instance with another credential cannot even stand, and says why.
	w := startInst(t, "w", []string{z.addr()}, path, rec, withDigest(NewDigest("operator", "not-the-pw-7f3a")))
	waitFor(t, 10*time.Second, "w to report it is not in the election", func() bool {
		return strings.Contains(w.e.Reason(), "not in the election")
	})
	if w.e.Ready() || w.e.IsLeader() {
		t.Errorf("instance with the wrong credential: ready=%v leader=%v", w.e.Ready(), w.e.IsLeader())
	}
	if r := w.e.Reason(); strings.Contains(r, "not-the-pw-7f3a") {
		t.Errorf("reason reveals the password: %q", r)
	}

	// A follower reads the set but cannot write it.
	b := startInst(t, "b", []string{z.addr()}, path, rec, withDigest(d))
	waitFor(t, 30*time.Second, "b to follow", b.following)
	bs := NewPKIStore(b.e)
	if f, err := bs.Load(ctx); err != nil || !f.Equal(set(1)) {
		t.Errorf("follower Load = %v, %v; want set 1", f, err)
	}
	if err := bs.Save(ctx, set(2)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("follower Save: err = %v, want ErrNotLeader", err)
	}

	// After handover the old leader's store is fenced, the new one writes.
	a.stop(t)
	waitFor(t, 2*time.Second, "b to lead", b.e.IsLeader)
	if err := s.Save(ctx, set(3)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Save by the former leader: err = %v, want ErrNotLeader", err)
	}
	if err := bs.Save(ctx, set(2)); err != nil {
		t.Errorf("Save by the new leader: %v", err)
	}
	if f, err := bs.Load(ctx); err != nil || !f.Equal(set(2)) {
		t.Errorf("Load = %v, %v; want set 2", f, err)
	}
}

func TestPKIStoreWritesAreFencedAndAtomic(t *testing.T) {
	z := startZK(t)
	d := NewDigest("operator", "s3cret")
	path := "/ro/leader"
	a := startInst(t, "a", []string{z.addr()}, path, newTerms(t), withDigest(d))
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	ctx := context.Background()
	s := NewPKIStore(a.e)
	if err := s.Save(ctx, set(1)); err != nil {
		t.Fatal(err)
	}

	// An instance that believes it leads, but whose candidate znode is
	// gone (its session expired): ZooKeeper rejects the whole transaction.
	ghost := idleElector(t, z, path, d)
	ghost.mu.Lock()
	ghost.leading, ghost.node = true, path+"/_c_gone-n_0000000000"
	ghost.mu.Unlock()
	if err := NewPKIStore(ghost).Save(ctx, set(2)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Save with a stale term: err = %v, want ErrNotLeader", err)
	}
	if f, err := s.Load(ctx); err != nil || !f.Equal(set(1)) {
		t.Errorf("after the rejected write Load = %v, %v; want set 1 untouched", f, err)
	}

	// A writer that read an older version loses the compare-and-set.
	x, y := NewPKIStore(a.e), NewPKIStore(a.e)
	if _, err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := y.Save(ctx, set(3)); err != nil {
		t.Fatal(err)
	}
	if err := x.Save(ctx, set(4)); !errors.Is(err, zk.ErrBadVersion) {
		t.Errorf("Save over a newer version: err = %v, want ErrBadVersion", err)
	}
	if f, err := s.Load(ctx); err != nil || !f.Equal(set(3)) {
		t.Errorf("after the conflict Load = %v, %v; want set 3", f, err)
	}
	if err := ctx.Err(); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Save(cancelled, set(5)); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestPKIStoreKeepsKeysUnderTheDigestACL(t *testing.T) {
	z := startZK(t)
	path := "/ro/leader"
	ctx := context.Background()

	// Without a credential only public files may be stored.
	a := startInst(t, "a", []string{z.addr()}, path, newTerms(t))
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	s := NewPKIStore(a.e)
	if err := s.Save(ctx, set(1)); err == nil || !strings.Contains(err.Error(), "digestFile") {
		t.Errorf("Save of keys without a digest: err = %v, want a refusal naming digestFile", err)
	}
	public := pki.Files{pki.FileCACert: []byte("cert")}
	if err := s.Save(ctx, public); err != nil {
		t.Fatal(err)
	}

	// A set znode someone made world-readable: its keys are not trusted
	// and no key is written to it.
	raw := rawConn(t, z, "")
	b, _ := json.Marshal(setData{Format: 1, Files: set(1)})
	if _, err := raw.Set(PKIPath(path), b, -1); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	d := NewDigest("operator", "s3cret")
	c := startInst(t, "c", []string{z.addr()}, "/ro2/leader", newTerms(t), withDigest(d))
	waitFor(t, 30*time.Second, "c to lead", c.e.IsLeader)
	cs := &PKIStore{e: c.e, path: PKIPath(path)}
	f, err := cs.Load(ctx)
	var bad pki.Corruption
	if !errors.As(err, &bad) || !bad.Has(pki.FileCAKey) {
		t.Errorf("Load of a world-readable set with keys: err = %v, want corruption of %s", err, pki.FileCAKey)
	}
	if _, ok := f[pki.FileCAKey]; ok || !f.Equal(pki.Files{pki.FileCACert: set(1)[pki.FileCACert], pki.FileState: set(1)[pki.FileState]}) {
		t.Errorf("Load returned %v; want the public files only", f)
	}
	if err := cs.Save(ctx, set(2)); err == nil || !strings.Contains(err.Error(), "grants read to world:anyone") {
		t.Errorf("Save of keys into a world-readable znode: err = %v, want a refusal", err)
	}
}

// The read-only store (plan) reads what the leader wrote, never stands in
// the election, and refuses every write without changing the set.
func TestReadOnlyPKIStore(t *testing.T) {
	z := startZK(t)
	d := NewDigest("operator", "s3cret")
	path := "/ro3/leader"
	a := startInst(t, "a", []string{z.addr()}, path, newTerms(t), withDigest(d))
	waitFor(t, 30*time.Second, "a to lead", a.e.IsLeader)
	ctx := context.Background()
	if err := NewPKIStore(a.e).Save(ctx, set(1)); err != nil {
		t.Fatal(err)
	}

	r, err := OpenReadOnlyPKIStore(Config{Servers: []string{z.addr()}, Path: path, SessionTimeout: testSession,
		Digest: d, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	f, err := r.Load(ctx)
	if err != nil || string(f[pki.FileCAKey]) != "key 1" || len(f) != len(set(1)) {
		t.Fatalf("read-only Load = %v, %v; want the set the leader wrote", f, err)
	}
	if err := r.Save(ctx, set(2)); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("read-only Save: err = %v, want ErrReadOnly", err)
	}
	if f, err := NewPKIStore(a.e).Load(ctx); err != nil || string(f[pki.FileCAKey]) != "key 1" {
		t.Fatalf("set after a refused write = %v, %v; want it unchanged", f, err)
	}
	if kids := children(t, z, path); len(kids) != 1 {
		t.Errorf("election children %v: the read-only store must not stand in the election", kids)
	}
}

// Without a session the read-only store gives up when ctx does, instead
// of queueing a request that waits for ZooKeeper without bound.
func TestReadOnlyPKIStoreUnreachable(t *testing.T) {
	r, err := OpenReadOnlyPKIStore(Config{Servers: []string{fmt.Sprintf("127.0.0.1:%d", freePort(t))}, Path: "/ro4/leader",
		SessionTimeout: testSession, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := r.Load(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no ZooKeeper session") {
		t.Fatalf("Load without ZooKeeper: err = %v", err)
	}
}
