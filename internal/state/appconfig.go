package state

import (
	"maps"
	"slices"
)

// AppConfigPlacement is RegistryConfigPlacement for another app that runs
// docker-registry from a config.yml placement puts on its agents (the
// pull-through mirror), by app id.
//
//	owner    placement (SetAppConfigPlaced)
//	readers  app
func (s *Store) AppConfigPlacement(app string) RegistryConfigPlacement {
	s.mu.RLock()
	defer s.mu.RUnlock()
	placed := s.appConfigPlaced[app]
	v := RegistryConfigPlacement{Nodes: make([]PlacedNode, 0, len(s.nodes))}
	for _, addr := range slices.Sorted(maps.Keys(s.nodes)) {
		v.Nodes = append(v.Nodes, PlacedNode{Address: addr, Hostname: s.nodes[addr].Hostname, Hash: placed[addr]})
	}
	return v
}

// SetAppConfigPlaced records the config hash node addr holds for app ("" when
// unknown) and notifies TopicRegistryConfig listeners when it changed.
func (s *Store) SetAppConfigPlaced(app, addr, hash string) {
	s.mu.Lock()
	if s.appConfigPlaced == nil {
		s.appConfigPlaced = map[string]map[string]string{}
	}
	if s.appConfigPlaced[app] == nil {
		s.appConfigPlaced[app] = map[string]string{}
	}
	changed := s.appConfigPlaced[app][addr] != hash
	s.appConfigPlaced[app][addr] = hash
	s.mu.Unlock()
	if changed {
		s.notify(TopicRegistryConfig)
	}
}
