package pullsecret

import (
	"fmt"
	"io"
	"slices"
	"time"

	"k8s.io/utils/clock"
)

// MaxGrace caps how long the previous password stays valid after every
// agent carries the new one.
const MaxGrace = 10 * time.Minute

// MinRotation is the shortest rotation period Decide accepts.
const MinRotation = time.Minute

// Agent is what the caller knows of one agent's pull credentials.
type Agent struct {
	Name string
	// Reachable: the agent answered this pass. Unreachable agents neither
	// hold a rotation back nor count as carrying anything.
	Reachable bool
	// Generation its credentials carry; 0 when none or not ours.
	Generation int64
}

// Action is what a Decision asks for.
type Action string

// Actions.
const (
	// ActionNone: nothing to do until Decision.Next.
	ActionNone Action = "none"
	// ActionCreate: there is no pull password yet; make generation 1.
	ActionCreate Action = "create"
	// ActionRotate: the rotation period has passed; make the next
	// generation and keep the current one as previous.
	ActionRotate Action = "rotate"
	// ActionDistributed: every reachable agent now carries the current
	// generation; the grace starts.
	ActionDistributed Action = "distributed"
	// ActionRegressed: an agent lacks the current generation again after
	// all had it; the grace starts over once it has it.
	ActionRegressed Action = "regressed"
	// ActionDropPrevious: the grace has passed with every reachable agent
	// on the current generation; remove the previous one.
	ActionDropPrevious Action = "drop-previous"
	// ActionWait: a rotation is under way and cannot progress yet.
	ActionWait Action = "wait"
)

// Decision is the next step of the lifecycle.
type Decision struct {
	Action Action
	// Reason is a sentence for logs, plans and status (never a secret).
	Reason string
	// Lagging are the reachable agents that do not carry the current
	// generation, sorted.
	Lagging []string
	// Overdue: a rotation has waited longer than the grace for agents to
	// take the new generation; worth an alert.
	Overdue bool
	// Next is when the decision may change without any agent changing:
	// the next rotation or the end of the grace. Zero when only a change
	// of the agents can move things on.
	Next time.Time
}

// Rotator decides and applies steps with an injected clock and randomness.
type Rotator struct {
	Clock clock.PassiveClock
	// Rand is the source of new passwords; crypto/rand.Reader when nil.
	Rand io.Reader
	// Rotation is how often a new pull password is made.
	Rotation time.Duration
}

// Grace is min(MaxGrace, Rotation/2).
func (r Rotator) Grace() time.Duration { return min(MaxGrace, r.Rotation/2) }

// NextRotation is when s's current generation is due to be replaced.
func (r Rotator) NextRotation(s State) time.Time { return s.Current.Created.Add(r.Rotation) }

// Decide returns the next step for s (nil: no state yet) given the agents.
func (r Rotator) Decide(s *State, agents []Agent) (Decision, error) {
	if r.Rotation < MinRotation {
		return Decision{}, fmt.Errorf("pull password rotation %s: want at least %s", r.Rotation, MinRotation)
	}
	now := r.Clock.Now()
	if s == nil {
		return Decision{Action: ActionCreate, Reason: "no pull password yet", Next: now}, nil
	}
	d := Decision{Lagging: lagging(s.Current.Generation, agents)}
	if s.Previous == nil {
		due := r.NextRotation(*s)
		if !now.Before(due) {
			d.Action, d.Reason, d.Next = ActionRotate, fmt.Sprintf("generation %d is older than the rotation period %s",
				s.Current.Generation, r.Rotation), now
			return d, nil
		}
		d.Action, d.Reason, d.Next = ActionNone, fmt.Sprintf("generation %d is current until %s",
			s.Current.Generation, due.UTC().Format(time.RFC3339)), due
		return d, nil
	}
	return r.retire(s, agents, d, now), nil
}

// retire decides for a rotation under way.
func (r Rotator) retire(s *State, agents []Agent, d Decision, now time.Time) Decision {
	grace := r.Grace()
	d.Overdue = len(d.Lagging) > 0 && !now.Before(s.Current.Created.Add(grace))
	switch {
	case len(agents) > 0 && !slices.ContainsFunc(agents, func(a Agent) bool { return a.Reachable }):
		d.Action, d.Reason = ActionWait, fmt.Sprintf("no agent is reachable; generation %d stays valid", s.Previous.Generation)
	case len(d.Lagging) > 0 && !s.Distributed.IsZero():
		d.Action, d.Reason = ActionRegressed, fmt.Sprintf("%d agent(s) no longer carry generation %d; the grace starts again once they do",
			len(d.Lagging), s.Current.Generation)
	case len(d.Lagging) > 0:
		d.Action, d.Reason = ActionWait, fmt.Sprintf("%d agent(s) do not carry generation %d yet", len(d.Lagging), s.Current.Generation)
	case s.Distributed.IsZero():
		d.Action, d.Reason, d.Next = ActionDistributed, fmt.Sprintf("every reachable agent carries generation %d; generation %d "+
			"stays valid for %s more", s.Current.Generation, s.Previous.Generation, grace), now.Add(grace)
	case now.Before(s.Distributed.Add(grace)):
		end := s.Distributed.Add(grace)
		d.Action, d.Reason, d.Next = ActionWait, fmt.Sprintf("generation %d stays valid until %s (grace %s)",
			s.Previous.Generation, end.UTC().Format(time.RFC3339), grace), end
	default:
		d.Action, d.Reason = ActionDropPrevious, fmt.Sprintf("every reachable agent has carried generation %d for %s; "+
			"generation %d is removed", s.Current.Generation, grace, s.Previous.Generation)
		d.Next = r.NextRotation(*s)
	}
	return d
}

func lagging(gen int64, agents []Agent) []string {
	var out []string
	for _, a := range agents {
		if a.Reachable && a.Generation != gen {
			out = append(out, a.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Step decides and applies: it returns the state to persist (before the
// caller writes htpasswd files or agents' credentials for it) and the
// decision. s is not modified.
func (r Rotator) Step(s *State, agents []Agent) (State, Decision, error) {
	d, err := r.Decide(s, agents)
	if err != nil {
		return State{}, Decision{}, err
	}
	now := r.Clock.Now()
	if d.Action == ActionCreate {
		pw, err := NewPassword(r.Rand)
		if err != nil {
			return State{}, Decision{}, err
		}
		return State{Current: Credential{Generation: 1, Password: pw, Created: now}}, d, nil
	}
	next := *s
	if s.Previous != nil {
		prev := *s.Previous
		next.Previous = &prev
	}
	switch d.Action {
	case ActionRotate:
		pw, err := NewPassword(r.Rand)
		if err != nil {
			return State{}, Decision{}, err
		}
		prev := s.Current
		next = State{Current: Credential{Generation: prev.Generation + 1, Password: pw, Created: now}, Previous: &prev}
	case ActionDistributed:
		next.Distributed = now
	case ActionRegressed:
		next.Distributed = time.Time{}
	case ActionDropPrevious:
		next.Previous = nil
	}
	return next, d, nil
}
