package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// PullPassword is the generated pull password as people may see it: who
// and which generation, when it rotates, which agents lag. Never the
// password itself, nor anything derived from it.
type PullPassword struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// User is the current pull user (<pullUser>-<generation>).
	User       string `json:"user"`
	Generation int    `json:"generation"`
	// ValidUsers are the users the registry accepts now: the current one,
	// and the previous one while a rotation waits for agents.
	ValidUsers   []string  `json:"validUsers"`
	NextRotation time.Time `json:"nextRotation"`
	Phase        string    `json:"phase,omitempty"`
	// Lagging are reachable agents without the current credentials;
	// Overdue is set when some keep old ones past the rotation's grace.
	Lagging []string `json:"lagging,omitempty"`
	Overdue bool     `json:"overdue,omitempty"`
	Pending []string `json:"pending,omitempty"`
}

// pullPassword is the status of the pull password, nil when the pullsecret
// reconciler is off and has published nothing.
func pullPassword(store *state.Store, recs []state.ReconcilerStatus) *PullPassword {
	p := store.PullSecret()
	on := p.Current.Name != "" || p.Reason != ""
	for _, r := range recs {
		if r.Name == reconciler.PullSecret {
			on = on || r.Enabled
		}
	}
	if !on {
		return nil
	}
	out := &PullPassword{Ready: p.Ready, Reason: p.Reason, User: p.Current.Name, Generation: p.Current.Generation,
		ValidUsers: []string{}, NextRotation: p.NextRotation, Phase: p.Phase, Lagging: p.Lagging, Overdue: p.Overdue,
		Pending: p.Pending}
	for _, u := range p.Valid {
		out.ValidUsers = append(out.ValidUsers, u.Name)
	}
	return out
}

// problems lists what needs attention about the pull password.
func (p *PullPassword) problems() []string {
	if p == nil {
		return nil
	}
	var out []string
	switch {
	case !p.Ready && p.Reason != "":
		out = append(out, "not ready: "+p.Reason)
	case !p.Ready:
		out = append(out, "not created yet")
	}
	if p.Overdue {
		out = append(out, fmt.Sprintf("%d agent(s) keep old credentials past the rotation's grace: %s",
			len(p.Lagging), strings.Join(p.Lagging, ", ")))
	}
	return append(out, p.Pending...)
}
