package state

import (
	"maps"
	"slices"
)

// RegistryConfigPlacement is which config.yml (by hash) each node holds in
// app.certsHostPath, as the placement reconciler last made it. The
// registry reads that file only at start, so the app reconciler changes the
// app (and so restarts the registry) for a new config only once the
// registry's agents hold it; otherwise a task would start without it.
//
//	owner    placement (SetRegistryConfigPlaced)
//	readers  app
//
// The htpasswd file is not part of it: the registry re-reads it by itself,
// so a password change needs no restart and must not cause one.
type RegistryConfigPlacement struct {
	// Nodes is every node of the fleet, sorted by address; Hash is the
	// config it holds ("" none, unknown, or not yet; on an agent that may
	// not run the registry, the current one: it needs none).
	Nodes []PlacedNode
}

// Missing lists, sorted, the nodes for which include says yes that do not
// hold config hash (include nil: every node).
func (r RegistryConfigPlacement) Missing(hash string, include func(PlacedNode) bool) []string {
	var out []string
	for _, n := range r.Nodes {
		if n.Hash != hash && (include == nil || include(n)) {
			out = append(out, n.Address)
		}
	}
	return out
}

// RegistryConfigPlacement returns the placement reconciler's view of the
// registry's config file.
func (s *Store) RegistryConfigPlacement() RegistryConfigPlacement {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := RegistryConfigPlacement{Nodes: make([]PlacedNode, 0, len(s.nodes))}
	for _, addr := range slices.Sorted(maps.Keys(s.nodes)) {
		v.Nodes = append(v.Nodes, PlacedNode{Address: addr, Hostname: s.nodes[addr].Hostname, Hash: s.configPlaced[addr]})
	}
	return v
}

// SetRegistryConfigPlaced records the config hash node addr holds ("" when
// unknown) and notifies TopicRegistryConfig listeners when it changed, so
// an app waiting for it moves at once.
func (s *Store) SetRegistryConfigPlaced(addr, hash string) {
	s.mu.Lock()
	if s.configPlaced == nil {
		s.configPlaced = map[string]string{}
	}
	changed := s.configPlaced[addr] != hash
	s.configPlaced[addr] = hash
	s.mu.Unlock()
	if changed {
		s.notify(TopicRegistryConfig)
	}
}
