package state

import (
	"maps"
	"slices"
	"strconv"

	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// CarriedNode is one agent's pull credentials as the credentials
// reconciler last found or left them.
type CarriedNode struct {
	Address string
	// Reachable: the agent answered at its last contact. Unreachable
	// agents neither hold a rotation back nor count as carrying anything.
	Reachable bool
	// Generation is the pull password generation every enabled form on
	// the agent carries; 0 when some form carries none, another user, or
	// a password that is no longer valid.
	Generation int64
}

// CredentialsHash is the Concern.Hash the credentials reconciler records
// for an agent carrying generation gen ("" for none).
func CredentialsHash(gen int64) string {
	if gen <= 0 {
		return ""
	}
	return strconv.FormatInt(gen, 10)
}

// CredentialsCarried returns the credentials reconciler's view: every node
// of the fleet, sorted by address, with the generation it carries.
func (s *Store) CredentialsCarried() []CarriedNode {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]CarriedNode, 0, len(s.nodes))
	for _, addr := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[addr]
		gen, _ := strconv.ParseInt(n.Concerns[reconciler.Credentials].Hash, 10, 64)
		out = append(out, CarriedNode{Address: addr, Reachable: n.Reachable, Generation: gen})
	}
	return out
}
