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
	// Nodes maps every node of the fleet to the hash of the config it
	// holds ("" none, unknown, or not yet; on an agent that may not run
	// the registry, the current one: it needs none).
	Nodes map[string]string
}

// Missing lists, sorted, the nodes that do not hold config hash.
func (r RegistryConfigPlacement) Missing(hash string) []string {
	var out []string
	for addr, h := range r.Nodes {
		if h != hash {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}

// RegistryConfigPlacement returns the placement reconciler's view of the
// registry's config file.
func (s *Store) RegistryConfigPlacement() RegistryConfigPlacement {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := RegistryConfigPlacement{Nodes: make(map[string]string, len(s.nodes))}
	for _, addr := range slices.Sorted(maps.Keys(s.nodes)) {
		v.Nodes[addr] = s.configPlaced[addr]
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
