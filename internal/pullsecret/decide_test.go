package pullsecret

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/internal/secret"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func cred(gen int64, created time.Time) Credential {
	return Credential{Generation: gen, Password: secret.Value(strings.Repeat(string(rune('a'+gen)), 43)), Created: created}
}

func on(names string, gen int64) []Agent {
	var out []Agent
	for _, n := range strings.Fields(names) {
		out = append(out, Agent{Name: n, Reachable: true, Generation: gen})
	}
	return out
}

func TestDecide(t *testing.T) {
	const rotation = 720 * time.Hour // grace 10m
	rotating := func(distributed time.Time) *State {
		prev := cred(1, t0.Add(-rotation))
		return &State{Current: cred(2, t0), Previous: &prev, Distributed: distributed}
	}
	cases := []struct {
		name        string
		now         time.Time
		rotation    time.Duration
		state       *State
		agents      []Agent
		want        Action
		wantLagging string
		wantOverdue bool
		wantNext    time.Time
	}{
		{name: "no state", now: t0, state: nil, want: ActionCreate, wantNext: t0},
		{name: "fresh", now: t0.Add(time.Hour), state: &State{Current: cred(1, t0)}, agents: on("a b", 1),
			want: ActionNone, wantNext: t0.Add(rotation)},
		{name: "fresh, one agent without credentials", now: t0.Add(time.Hour), state: &State{Current: cred(1, t0)},
			agents: append(on("a", 1), Agent{Name: "b", Reachable: true}), want: ActionNone, wantLagging: "b", wantNext: t0.Add(rotation)},
		{name: "rotation due to the second", now: t0.Add(rotation), state: &State{Current: cred(1, t0)}, agents: on("a", 1),
			want: ActionRotate, wantNext: t0.Add(rotation)},
		{name: "rotation overdue", now: t0.Add(2 * rotation), state: &State{Current: cred(1, t0)}, want: ActionRotate, wantNext: t0.Add(2 * rotation)},
		{name: "just rotated, agents on the old one", now: t0.Add(time.Second), state: rotating(time.Time{}),
			agents: on("b a", 1), want: ActionWait, wantLagging: "a b"},
		{name: "half distributed", now: t0.Add(time.Minute), state: rotating(time.Time{}),
			agents: append(on("a", 2), on("b", 1)...), want: ActionWait, wantLagging: "b"},
		{name: "lagging past the grace is overdue", now: t0.Add(10 * time.Minute), state: rotating(time.Time{}),
			agents: append(on("a", 2), on("b", 1)...), want: ActionWait, wantLagging: "b", wantOverdue: true},
		{name: "unreachable agent does not hold it back", now: t0.Add(time.Minute), state: rotating(time.Time{}),
			agents: append(on("a", 2), Agent{Name: "down", Generation: 1}), want: ActionDistributed, wantNext: t0.Add(11 * time.Minute)},
		{name: "no agent reachable", now: t0.Add(time.Hour), state: rotating(time.Time{}),
			agents: []Agent{{Name: "a", Generation: 1}, {Name: "b"}}, want: ActionWait},
		{name: "no agents known", now: t0.Add(time.Minute), state: rotating(time.Time{}), want: ActionDistributed,
			wantNext: t0.Add(11 * time.Minute)},
		{name: "all carry it", now: t0.Add(2 * time.Minute), state: rotating(time.Time{}), agents: on("a b", 2),
			want: ActionDistributed, wantNext: t0.Add(12 * time.Minute)},
		{name: "in the grace", now: t0.Add(11*time.Minute - time.Second), state: rotating(t0.Add(time.Minute)), agents: on("a b", 2),
			want: ActionWait, wantNext: t0.Add(11 * time.Minute)},
		{name: "grace over", now: t0.Add(11 * time.Minute), state: rotating(t0.Add(time.Minute)), agents: on("a b", 2),
			want: ActionDropPrevious, wantNext: t0.Add(rotation)},
		{name: "an agent lost it during the grace", now: t0.Add(5 * time.Minute), state: rotating(t0.Add(time.Minute)),
			agents: append(on("a", 2), on("b", 1)...), want: ActionRegressed, wantLagging: "b"},
		{name: "a new agent without credentials during the grace", now: t0.Add(5 * time.Minute), state: rotating(t0.Add(time.Minute)),
			agents: append(on("a", 2), Agent{Name: "new", Reachable: true}), want: ActionRegressed, wantLagging: "new"},
		{name: "no second rotation while one is under way", now: t0.Add(3 * rotation), state: rotating(time.Time{}),
			agents: on("a", 1), want: ActionWait, wantLagging: "a", wantOverdue: true},
		{name: "short rotation: grace is half of it", now: t0.Add(89 * time.Second), rotation: 3 * time.Minute,
			state: rotating(t0), agents: on("a", 2), want: ActionWait, wantNext: t0.Add(90 * time.Second)},
		{name: "short rotation: grace over", now: t0.Add(90 * time.Second), rotation: 3 * time.Minute,
			state: rotating(t0), agents: on("a", 2), want: ActionDropPrevious, wantNext: t0.Add(3 * time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rot := rotation
			if tc.rotation != 0 {
				rot = tc.rotation
			}
			r := Rotator{Clock: clocktesting.NewFakePassiveClock(tc.now), Rotation: rot}
			d, err := r.Decide(tc.state, tc.agents)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tc.want || strings.Join(d.Lagging, " ") != tc.wantLagging || d.Overdue != tc.wantOverdue || !d.Next.Equal(tc.wantNext) {
				t.Errorf("Decide = %s lagging %q overdue %v next %s (%s)\nwant %s lagging %q overdue %v next %s",
					d.Action, strings.Join(d.Lagging, " "), d.Overdue, d.Next, d.Reason, tc.want, tc.wantLagging, tc.wantOverdue, tc.wantNext)
			}
			if d.Reason == "" {
				t.Error("no reason")
			}
			for _, c := range []*Credential{stateCurrent(tc.state), statePrevious(tc.state)} {
				if c != nil && strings.Contains(d.Reason, c.Password.Reveal()) {
					t.Errorf("reason %q shows a password", d.Reason)
				}
			}
		})
	}
}

func stateCurrent(s *State) *Credential {
	if s == nil {
		return nil
	}
	return &s.Current
}

func statePrevious(s *State) *Credential {
	if s == nil {
		return nil
	}
	return s.Previous
}

func TestGrace(t *testing.T) {
	for rot, want := range map[time.Duration]time.Duration{
		time.Minute: 30 * time.Second, 10 * time.Minute: 5 * time.Minute, 20 * time.Minute: 10 * time.Minute, 720 * time.Hour: 10 * time.Minute,
	} {
		if got := (Rotator{Rotation: rot}).Grace(); got != want {
			t.Errorf("Grace(%s) = %s, want %s", rot, got, want)
		}
	}
	if _, err := (Rotator{Clock: clocktesting.NewFakePassiveClock(t0), Rotation: 59 * time.Second}).Decide(nil, nil); err == nil {
		t.Error("rotation under a minute accepted")
	}
}

// TestLifecycle walks a whole rotation with a fake clock, checking at each
// step which users the htpasswd file would hold: the new user is valid
// before any agent gets it, and the old one until the grace has passed.
func TestLifecycle(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	r := Rotator{Clock: clk, Rotation: time.Hour, Rand: bytes.NewReader(sequence(256))}
	step := func(s *State, agents []Agent, want Action) State {
		t.Helper()
		next, d, err := r.Step(s, agents)
		if err != nil {
			t.Fatal(err)
		}
		if d.Action != want {
			t.Fatalf("at %s: %s (%s), want %s", clk.Now().Sub(t0), d.Action, d.Reason, want)
		}
		return next
	}
	users := func(s State) string { return strings.Join(slices.Sorted(maps.Keys(s.Users("agents"))), " ") }

	s := step(nil, nil, ActionCreate)
	if s.Current.Generation != 1 || !s.Current.Created.Equal(t0) || len(s.Current.Password.Reveal()) != 43 || users(s) != "agents-1" {
		t.Fatalf("created %+v users %q", s.Current, users(s))
	}
	s = step(&s, on("a b", 1), ActionNone)
	clk.Step(time.Hour)
	s1 := s
	s = step(&s, on("a b", 1), ActionRotate)
	if s.Current.Generation != 2 || s.Current.Password == s1.Current.Password || s.Previous.Password != s1.Current.Password ||
		users(s) != "agents-1 agents-2" {
		t.Fatalf("rotated: gen %d users %q", s.Current.Generation, users(s))
	}
	if s1.Previous != nil || s1.Current.Generation != 1 {
		t.Fatal("Step modified its input")
	}
	s = step(&s, append(on("a", 2), on("b", 1)...), ActionWait)
	clk.Step(time.Minute)
	s = step(&s, on("a b", 2), ActionDistributed)
	if !s.Distributed.Equal(clk.Now()) {
		t.Fatalf("distributed at %s", s.Distributed)
	}
	clk.Step(5 * time.Minute)
	s = step(&s, append(on("a", 2), on("b", 1)...), ActionRegressed)
	if !s.Distributed.IsZero() || users(s) != "agents-1 agents-2" {
		t.Fatalf("regressed: distributed %s users %q", s.Distributed, users(s))
	}
	s = step(&s, on("a b", 2), ActionDistributed)
	clk.Step(10*time.Minute - time.Second)
	s = step(&s, on("a b", 2), ActionWait)
	clk.Step(time.Second)
	s = step(&s, on("a b", 2), ActionDropPrevious)
	if s.Previous != nil || users(s) != "agents-2" {
		t.Fatalf("dropped: users %q", users(s))
	}
	s = step(&s, on("a b", 2), ActionNone)
}

// sequence is a reproducible random source whose reads never repeat.
func sequence(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestNewPassword(t *testing.T) {
	a, err := NewPassword(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewPassword(nil)
	if a == b || len(a.Reveal()) != 43 || strings.ContainsAny(a.Reveal(), "+/=:") {
		t.Errorf("passwords %d chars, equal %v, charset ok %v", len(a.Reveal()), a == b, !strings.ContainsAny(a.Reveal(), "+/=:"))
	}
	if _, err := NewPassword(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("a short random source gave a password")
	}
	if got := UserName("agents", 12); got != "agents-12" {
		t.Errorf("UserName = %q", got)
	}
}

func TestCarried(t *testing.T) {
	prev := cred(6, t0.Add(-time.Hour))
	s := State{Current: cred(7, t0), Previous: &prev}
	cases := []struct {
		user string
		pw   secret.Value
		want int64
	}{
		{"agents-7", s.Current.Password, 7},
		{"agents-6", prev.Password, 6},
		{"agents-7", prev.Password, 0},
		{"agents-6", s.Current.Password, 0},
		{"agents-5", "whatever-password", 0},
		{"ci-7", s.Current.Password, 0},
		{"", "", 0},
	}
	for _, tc := range cases {
		if got := s.Carried("agents", tc.user, tc.pw); got != tc.want {
			t.Errorf("Carried(%q) = %d, want %d", tc.user, got, tc.want)
		}
	}
	if got := (State{Current: cred(1, t0)}).Carried("agents", "agents-6", prev.Password); got != 0 {
		t.Errorf("without a previous generation: %d", got)
	}
}
