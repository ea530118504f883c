package state

import "testing"

// The registry accepts a pull user once every node that may run it holds
// it; nodes that need none do not count, unknown nodes hold it back, and
// listeners hear of changes only.
func TestRegistryPullUsers(t *testing.T) {
	s := New()
	s.SetFleet([]Node{{Address: "a"}, {Address: "b"}, {Address: "c"}})
	calls := 0
	s.OnChange(TopicRegistryUsers, func() { calls++ })
	if s.RegistryPullUsers().Accepts("agents-1") {
		t.Fatal("accepted before placement wrote anything")
	}
	s.SetHtpasswdHeld("a", HtpasswdHeld{PullUsers: []string{"agents-2", "agents-1"}})
	s.SetHtpasswdHeld("c", HtpasswdHeld{NeedsNone: true})
	if s.RegistryPullUsers().Accepts("agents-1") {
		t.Fatal("accepted while b, which may run the registry, is unknown")
	}
	s.SetHtpasswdHeld("b", HtpasswdHeld{PullUsers: []string{"agents-1"}})
	v := s.RegistryPullUsers()
	if !v.Accepts("agents-1") || v.Accepts("agents-2") {
		t.Fatalf("view %+v", v)
	}
	s.SetHtpasswdHeld("a", HtpasswdHeld{PullUsers: []string{"agents-1", "agents-2"}}) // same set, other order
	if calls != 3 {
		t.Errorf("%d notifications, want 3 (one per change)", calls)
	}
	s.SetHtpasswdHeld("a", HtpasswdHeld{NeedsNone: true})
	s.SetHtpasswdHeld("b", HtpasswdHeld{NeedsNone: true})
	if s.RegistryPullUsers().Accepts("agents-1") {
		t.Error("accepted with no node that may run the registry")
	}
}
