package controllers

import (
	"context"
	"fmt"
	"sync"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/state"
)

// restartGate orders dockerd restarts across the fleet: one agent at a
// time, and the registry's agents only after every other reachable agent
// has been checked and owes no restart, so the registry stays up while the
// rest of the fleet restarts.
type restartGate struct {
	one sync.Mutex // held for the whole of one restart

	mu      sync.Mutex
	pending map[string]bool // node -> owes a restart; present once checked
	want    string          // the insecure-registries the answers in pending are about
}

// about says which insecure-registries change the restarts are for (the
// names tls.mode insecure wants, "" for none). When it changes, every node
// must be checked anew: that an agent owed nothing for the last change
// says nothing about this one.
func (g *restartGate) about(want string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.want != want {
		g.want = want
		clear(g.pending)
	}
}

func (g *restartGate) set(node string, owed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending[node] = owed
}

// othersOwe reports whether an agent not running the registry still owes
// a restart, or has not been checked yet.
func (g *restartGate) othersOwe(st *state.Store, self string, isRegistry func(*v1alpha1.Spec, string) bool, spec *v1alpha1.Spec) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range st.Nodes() {
		if n.Address == self || (!n.Reachable && n.LastError != "") || isRegistry(spec, n.Address) {
			continue
		}
		if owed, checked := g.pending[n.Address]; owed || !checked {
			return true
		}
	}
	return false
}

// restart runs the fixed restart script on one node, holding the gate so
// no two agents restart dockerd at once.
func (g *restartGate) restart(ctx context.Context, c nodes.Conn) error {
	g.one.Lock()
	defer g.one.Unlock()
	if out, err := c.Run(ctx, scriptRestartDockerd); err != nil {
		return fmt.Errorf("%w (output: %s)", err, lastLine(out))
	}
	return nil
}
