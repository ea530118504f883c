package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/registry-operator/registry-operator/internal/pki"
)

// ErrNotLeader is returned by PKIStore.Save on an instance that does not
// lead (or no longer does).
var ErrNotLeader = errors.New("only the leader writes the shared PKI state")

// maxSetBytes stays under ZooKeeper's default jute.maxbuffer (1 MiB).
const maxSetBytes = 900 << 10

// PKIStore is a pki.Store in one znode, PKIPath(election path): the whole
// set is one value, so it is replaced atomically. Every instance may Load
// it; only the leader may Save, and ZooKeeper enforces that: each write is
// one multi-op transaction that also checks the leader's candidate znode
// exists. That znode is ephemeral and lowest among the candidates, so it
// exists exactly while its session holds leadership; a write from a
// leader whose session expired, or that was overtaken, fails as a whole.
// The set znode carries the digest ACL only: without the credential from
// spec.leaderElection.digestFile nobody can read or change it, and private
// keys are never written without that ACL.
type PKIStore struct {
	e    *Elector
	path string

	mu      sync.Mutex
	known   bool  // version below is what this instance last read or wrote
	exists  bool  // the set znode existed then
	version int32 // its data version
}

// NewPKIStore returns the shared PKI store of e's election.
func NewPKIStore(e *Elector) *PKIStore {
	return &PKIStore{e: e, path: PKIPath(e.cfg.Path)}
}

var _ pki.Store = (*PKIStore)(nil)

// Where implements pki.Store.
func (s *PKIStore) Where() string {
	return "zookeeper " + strings.Join(s.e.cfg.Servers, ",") + s.path
}

// setData is the znode's content.
type setData struct {
	Format int               `json:"format"`
	Files  map[string][]byte `json:"files"`
}

// Load implements pki.Store.
func (s *PKIStore) Load(ctx context.Context) (pki.Files, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.e.ensureAuth(); err != nil {
		return nil, err
	}
	b, st, err := s.e.conn.Get(s.path)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		s.remember(false, 0)
		return pki.Files{}, nil
	case errors.Is(err, zk.ErrNoAuth):
		return nil, s.denied("read")
	case err != nil:
		return nil, fmt.Errorf("read PKI state %s: %w", s.Where(), err)
	}
	var d setData
	if err := json.Unmarshal(b, &d); err != nil || d.Format != 1 {
		return nil, pki.Corruption{{File: s.path, Reason: fmt.Sprintf("znode data is not a PKI state set of format 1 "+
			"(move it away with zkCli.sh to start afresh, after saving it): %v", err)}}
	}
	f := pki.Files{}
	var bad pki.Corruption
	for name, content := range d.Files {
		if !slices.Contains(pki.KnownFiles, name) {
			bad = append(bad, &pki.CorruptError{File: name, Reason: "not a file of the PKI state set"})
			continue
		}
		f[name] = content
	}
	if hasKeys(f) {
		open, err := s.exposed()
		if err != nil {
			return nil, err
		}
		if open != "" {
			for name := range f {
				if pki.IsKeyFile(name) {
					delete(f, name)
					bad = append(bad, &pki.CorruptError{File: name, Reason: fmt.Sprintf("znode %s grants %s: the private key "+
						"may have been read by others; restrict the ACL to the digest credential if that is acceptable", s.path, open)})
				}
			}
		}
	}
	s.remember(true, st.Version)
	if len(bad) > 0 {
		return f, bad
	}
	return f, nil
}

// Save implements pki.Store.
func (s *PKIStore) Save(ctx context.Context, f pki.Files) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	own, ok := s.e.term()
	if !ok {
		return fmt.Errorf("save PKI state %s: %w", s.Where(), ErrNotLeader)
	}
	for name := range f {
		if !slices.Contains(pki.KnownFiles, name) {
			return fmt.Errorf("refusing to store unknown file %q", name)
		}
	}
	if hasKeys(f) && s.e.cfg.Digest == nil {
		return fmt.Errorf("refusing to store private keys in %s without a digest ACL: set spec.leaderElection.digestFile", s.Where())
	}
	data, err := json.Marshal(setData{Format: 1, Files: f})
	if err != nil {
		return fmt.Errorf("encode PKI state: %w", err)
	}
	if len(data) > maxSetBytes {
		return fmt.Errorf("PKI state is %d bytes, more than the %d a znode may hold", len(data), maxSetBytes)
	}
	if err := s.e.ensureAuth(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		ok, st, err := s.e.conn.Exists(s.path)
		if err != nil {
			return fmt.Errorf("check PKI state %s: %w", s.Where(), err)
		}
		s.known, s.exists = true, ok
		if ok {
			s.version = st.Version
		}
	}
	if s.exists && hasKeys(f) {
		open, err := s.exposed()
		if err != nil {
			return err
		}
		if open != "" {
			return fmt.Errorf("refusing to store private keys in %s: the znode grants %s; set its ACL to the digest credential only", s.path, open)
		}
	}
	// The fence comes first: checking the own candidate znode makes the
	// whole transaction fail unless this session still leads.
	ops := []any{&zk.CheckVersionRequest{Path: own, Version: -1}}
	if s.exists {
		ops = append(ops, &zk.SetDataRequest{Path: s.path, Data: data, Version: s.version})
	} else {
		if err := s.e.ensurePath(path.Dir(s.path), electionACL(s.e.cfg.Digest)); err != nil {
			return err
		}
		ops = append(ops, &zk.CreateRequest{Path: s.path, Data: data, Acl: s.acl()})
	}
	res, err := s.e.conn.Multi(ops...)
	if err != nil {
		return s.multiErr(own, res, err)
	}
	if s.exists {
		s.version = res[1].Stat.Version
	} else {
		s.exists, s.version = true, 0
	}
	return nil
}

func (s *PKIStore) multiErr(own string, res []zk.MultiResponse, err error) error {
	s.known = false // read the znode afresh before the next write
	var fenceErr, writeErr error
	if len(res) == 2 {
		fenceErr, writeErr = res[0].Error, res[1].Error
	}
	switch {
	case errors.Is(fenceErr, zk.ErrNoNode):
		return fmt.Errorf("save PKI state %s: candidate %s is gone, this instance lost leadership; nothing written: %w",
			s.Where(), own, ErrNotLeader)
	case errors.Is(writeErr, zk.ErrBadVersion), errors.Is(writeErr, zk.ErrNodeExists), errors.Is(writeErr, zk.ErrNoNode):
		return fmt.Errorf("save PKI state %s: it changed since this instance read it; nothing written, the next pass reads it again: %w",
			s.Where(), writeErr)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(writeErr, zk.ErrNoAuth):
		return s.denied("write")
	}
	return fmt.Errorf("save PKI state %s: %w (nothing written unless ZooKeeper committed it before the connection "+
		"dropped; the next pass reads it back)", s.Where(), err)
}

func (s *PKIStore) remember(exists bool, version int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known, s.exists, s.version = true, exists, version
}

func (s *PKIStore) acl() []zk.ACL {
	if s.e.cfg.Digest == nil {
		return zk.WorldACL(zk.PermAll)
	}
	return s.e.cfg.Digest.acl()
}

// exposed names an ACL entry of the set znode that lets anyone but the
// digest credential read it ("" when there is none).
func (s *PKIStore) exposed() (string, error) {
	acl, _, err := s.e.conn.GetACL(s.path)
	if err != nil {
		return "", fmt.Errorf("read ACL of %s: %w", s.path, err)
	}
	var want []zk.ACL
	if s.e.cfg.Digest != nil {
		want = s.e.cfg.Digest.acl()
	}
	for _, a := range acl {
		if a.Perms&zk.PermRead == 0 || slices.ContainsFunc(want, func(w zk.ACL) bool { return w.Scheme == a.Scheme && w.ID == a.ID }) {
			continue
		}
		return fmt.Sprintf("read to %s:%s", a.Scheme, a.ID), nil
	}
	return "", nil
}

func (s *PKIStore) denied(op string) error {
	return fmt.Errorf("ZooKeeper denied %s of PKI state %s: the credential in spec.leaderElection.digestFile does not match the "+
		"znode's digest ACL (every instance needs the same user:password)", op, s.Where())
}

func hasKeys(f pki.Files) bool {
	for name := range f {
		if pki.IsKeyFile(name) {
			return true
		}
	}
	return false
}
