package state

import (
	"slices"
	"time"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// PullUser is one generated pull user the registry accepts.
type PullUser struct {
	Name       string       `json:"name"` // <pullUser>-<generation>
	Generation int          `json:"generation"`
	Password   secret.Value `json:"-"`
}

// PullSecret is the view of the registry's pull password.
//
//	owner    the pullsecret reconciler (generates, persists and rotates it)
//	readers  placement (every Valid user goes into the htpasswd file on the
//	         registry's agents), credentials (Current goes to every agent),
//	         the status page and metrics (generation, next rotation, lagging)
//
// A rotation adds the new user to Valid first, credentials then carry it to
// every agent, and only after that (and a grace) does the old user leave
// Valid, so a pull never meets a password the registry no longer accepts.
type PullSecret struct {
	// Ready: a pull password exists (loaded from or saved to the PKI store).
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Current is what agents get.
	Current PullUser `json:"current"`
	// Valid are the users the registry must accept now: Current, plus the
	// previous generation while a rotation waits for agents.
	Valid        []PullUser `json:"valid"`
	NextRotation time.Time  `json:"nextRotation"`
	// Lagging lists agents that do not carry Current yet; Overdue is set
	// when some keep old credentials past the rotation's grace.
	Lagging []string `json:"lagging,omitempty"`
	Overdue bool     `json:"overdue,omitempty"`
	// Phase is the rotation step in words (never a secret).
	Phase string `json:"phase,omitempty"`
	// Pending lists what a report-mode pass would do ("create pull
	// password generation 1"); empty when enforcing.
	Pending []string `json:"pending,omitempty"`
}

// Rotating reports whether a rotation is under way: a previous generation
// is still valid next to the current one.
func (p PullSecret) Rotating() bool { return len(p.Valid) > 1 }

// validKey identifies the set of valid users (names and generations, no
// secret) so readers can tell a change cheaply.
func (p PullSecret) validKey() string {
	k := ""
	for _, u := range p.Valid {
		k += u.Name + "\n"
	}
	return k
}

// PullSecret returns the pullsecret reconciler's view.
func (s *Store) PullSecret() PullSecret {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.pullSecret
	p.Valid = slices.Clone(p.Valid)
	p.Lagging = slices.Clone(p.Lagging)
	p.Pending = slices.Clone(p.Pending)
	return p
}

// SetPullSecret replaces the view and notifies TopicPullSecret listeners
// when the valid users or the current one changed.
func (s *Store) SetPullSecret(p PullSecret) {
	s.mu.Lock()
	old := s.pullSecret
	changed := old.Ready != p.Ready || old.Current.Name != p.Current.Name || old.Current.Password != p.Current.Password ||
		old.validKey() != p.validKey()
	s.pullSecret = p
	s.mu.Unlock()
	if changed {
		s.notify(TopicPullSecret)
	}
}
