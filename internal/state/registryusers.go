package state

import "slices"

// TopicRegistryUsers: the pull users some node's htpasswd file holds changed.
const TopicRegistryUsers = "registryusers"

// HtpasswdHeld is what placement last left in one node's htpasswd file.
type HtpasswdHeld struct {
	// NeedsNone: the agent may not run the registry, so what it holds
	// does not matter.
	NeedsNone bool
	// PullUsers are the generated pull users the file holds, by name
	// (never a password); nil while unknown or not yet written.
	PullUsers []string
}

// RegistryPullUsers is which pull users the htpasswd file on each agent
// that may run the registry holds, as placement last wrote or found it.
//
//	owner    placement (SetHtpasswdHeld)
//	readers  pullsecret
//
// During a rotation the pullsecret reconciler gives agents the new pull
// password only once the registry accepts it: once every agent that may
// run the registry holds the new user, since the registry re-reads the
// file by itself. So no agent pulls with a password the registry does not
// know yet.
type RegistryPullUsers struct {
	Nodes map[string]HtpasswdHeld // by address: every node of the fleet
}

// Accepts reports whether every node that may run the registry holds
// user. A node placement has not written yet (or could not reach) counts
// as not holding it: the registry could run there. A fleet with no such
// node accepts nothing: there is no registry to accept it.
func (r RegistryPullUsers) Accepts(user string) bool {
	candidates := 0
	for _, h := range r.Nodes {
		if h.NeedsNone {
			continue
		}
		candidates++
		if !slices.Contains(h.PullUsers, user) {
			return false
		}
	}
	return candidates > 0
}

// RegistryPullUsers returns the placement reconciler's view of the pull
// users in the htpasswd files.
func (s *Store) RegistryPullUsers() RegistryPullUsers {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := RegistryPullUsers{Nodes: make(map[string]HtpasswdHeld, len(s.nodes))}
	for addr := range s.nodes {
		h := s.htpasswdHeld[addr]
		h.PullUsers = slices.Clone(h.PullUsers)
		v.Nodes[addr] = h
	}
	return v
}

// SetHtpasswdHeld records what node addr's htpasswd file holds and
// notifies TopicRegistryUsers listeners when it changed, so a rotation
// waiting for the registry hands the new password to agents at once.
func (s *Store) SetHtpasswdHeld(addr string, h HtpasswdHeld) {
	h.PullUsers = slices.Clone(h.PullUsers)
	slices.Sort(h.PullUsers)
	s.mu.Lock()
	if s.htpasswdHeld == nil {
		s.htpasswdHeld = map[string]HtpasswdHeld{}
	}
	old, had := s.htpasswdHeld[addr]
	changed := !had || old.NeedsNone != h.NeedsNone || !slices.Equal(old.PullUsers, h.PullUsers)
	s.htpasswdHeld[addr] = h
	s.mu.Unlock()
	if changed {
		s.notify(TopicRegistryUsers)
	}
}
