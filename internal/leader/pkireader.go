package leader

import (
	"context"
	"errors"
	"fmt"

	"github.com/registry-operator/registry-operator/internal/pki"
)

// ErrReadOnly is returned by every write through a ReadOnlyPKIStore.
var ErrReadOnly = errors.New("this is a read-only view of the shared PKI state (plan); only the leader of a running operator writes it")

// ReadOnlyPKIStore reads an election's shared PKI state without taking
// part in the election: it holds a ZooKeeper session (with the digest
// credential, which reading the set needs) but never creates a candidate
// znode, and every Save fails. `plan` uses it, so its report-mode pass sees
// the certificates the leader keeps and cannot change them.
type ReadOnlyPKIStore struct {
	e     *Elector
	store *PKIStore
}

var _ pki.Store = (*ReadOnlyPKIStore)(nil)

// OpenReadOnlyPKIStore connects to the ensemble cfg names (in the
// background, like New); Close ends the session.
func OpenReadOnlyPKIStore(cfg Config) (*ReadOnlyPKIStore, error) {
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &ReadOnlyPKIStore{e: e, store: NewPKIStore(e)}, nil
}

// Where implements pki.Store.
func (r *ReadOnlyPKIStore) Where() string { return r.store.Where() + " (read-only)" }

// Load implements pki.Store. It waits for the session within ctx: a
// request sent before one exists would wait for it without bound.
func (r *ReadOnlyPKIStore) Load(ctx context.Context) (pki.Files, error) {
	if _, ok := r.e.awaitSession(ctx); !ok {
		return nil, fmt.Errorf("read PKI state %s: no ZooKeeper session (%s): %w", r.store.Where(), r.e.Reason(), ctx.Err())
	}
	return r.store.Load(ctx)
}

// Save implements pki.Store: it always fails, and writes nothing.
func (r *ReadOnlyPKIStore) Save(context.Context, pki.Files) error {
	return fmt.Errorf("save PKI state %s: %w", r.store.Where(), ErrReadOnly)
}

// Close ends the ZooKeeper session.
func (r *ReadOnlyPKIStore) Close() { r.e.Close() }
