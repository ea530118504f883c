package state

import (
	"slices"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/reconciler"
)

func TestFleetMembershipAndConcerns(t *testing.T) {
	s := New()
	var notified []string
	s.OnChange(TopicNodes, func() { notified = append(notified, TopicNodes) })
	s.SetFleet([]Node{{Address: "a", Source: "mesos"}, {Address: "b", Source: "static"}})
	s.SetConcern("a", "trust", Concern{InSync: true, Hash: "h1"})
	s.SetConcern("b", "trust", Concern{InSync: true, Hash: "h0"})

	if all, missing := s.NodesCarry("trust", "h1"); all || !slices.Equal(missing, []string{"b"}) {
		t.Fatalf("NodesCarry = %v %v, want false [b]", all, missing)
	}
	// Known nodes keep what they reported; vanished ones are removed and returned.
	removed := s.SetFleet([]Node{{Address: "a", Hostname: "agent-a", Source: "mesos"}, {Address: "c", Source: "mesos"}})
	if !slices.Equal(removed, []string{"b"}) {
		t.Fatalf("removed = %v", removed)
	}
	a, _ := s.Node("a")
	if a.Concerns["trust"].Hash != "h1" || a.Hostname != "agent-a" {
		t.Fatalf("node a lost its concern or hostname: %+v", a)
	}
	// A node that left is not resurrected by a late report.
	s.SetConcern("b", "trust", Concern{Hash: "h1"})
	s.SetContact("b", true, time.Now(), "")
	if _, ok := s.Node("b"); ok {
		t.Fatal("a late report resurrected a node that left")
	}
	if all, missing := s.NodesCarry("trust", "h1"); all || !slices.Equal(missing, []string{"c"}) {
		t.Fatalf("new node c has not reported: %v %v", all, missing)
	}
	if len(notified) == 0 {
		t.Error("no TopicNodes notification")
	}
}

func TestReadersGetCopies(t *testing.T) {
	s := New()
	s.SetFleet([]Node{{Address: "a"}})
	s.SetConcern("a", "trust", Concern{InSync: true})
	n := s.Nodes()[0]
	n.Concerns["trust"] = Concern{InSync: false}
	if got, _ := s.Node("a"); !got.Concerns["trust"].InSync {
		t.Fatal("a reader's change leaked into the store")
	}
	s.SetPKI(PKI{CAs: []CertInfo{{Serial: "1"}}})
	p := s.PKI()
	p.CAs[0].Serial = "2"
	if s.PKI().CAs[0].Serial != "1" {
		t.Fatal("PKI copy shares its slice")
	}
}

func TestPKINotifiesOnlyOnChange(t *testing.T) {
	s := New()
	n := 0
	s.OnChange(TopicPKI, func() { n++ })
	s.SetPKI(PKI{Ready: true, BundleHash: "b", ServerHash: "s"})
	s.SetPKI(PKI{Ready: true, BundleHash: "b", ServerHash: "s", Reason: "same material"})
	s.SetPKI(PKI{Ready: true, BundleHash: "b2", ServerHash: "s"})
	if n != 2 {
		t.Fatalf("notified %d times, want 2", n)
	}
}

func TestCountNodesRecountsOnlyOnChange(t *testing.T) {
	s := New()
	calls := 0
	classify := func(n *Node) string {
		calls++
		if c, ok := n.Concerns["trust"]; ok && c.InSync && n.Reachable {
			return "in"
		}
		return "out"
	}
	count := func(key string) map[string]int {
		calls = 0
		return s.CountNodes(key, classify)
	}
	s.SetFleet([]Node{{Address: "a"}, {Address: "b"}})
	if got := count("k"); got["out"] != 2 || calls != 2 {
		t.Fatalf("first count %v after %d calls", got, calls)
	}
	steps := []struct {
		name string
		// change; then only the nodes it may have moved are classified.
		change     func()
		classified int
		in, out    int
	}{
		{"same answer again", func() {}, 0, 0, 2},
		{"contact made", func() { s.SetContact("a", true, time.Now(), "") }, 1, 0, 2},
		{"contact again", func() { s.SetContact("a", true, time.Now(), "") }, 0, 0, 2},
		{"concern appears", func() { s.SetConcern("a", "trust", Concern{InSync: true, Hash: "h"}) }, 1, 1, 1},
		{"only detail changes", func() { s.SetConcern("a", "trust", Concern{InSync: true, Hash: "h", Detail: "x"}) }, 0, 1, 1},
		{"falls out of sync", func() { s.SetConcern("a", "trust", Concern{Hash: "h"}) }, 1, 0, 2},
		{"back in sync", func() { s.SetConcern("a", "trust", Concern{InSync: true, Hash: "h"}) }, 1, 1, 1},
		{"new error text only", func() { s.SetContact("b", false, time.Now(), "e1") }, 1, 1, 1},
		{"same error kind", func() { s.SetContact("b", false, time.Now(), "e2") }, 0, 1, 1},
		{"both change", func() {
			s.SetConcern("a", "trust", Concern{Hash: "h"})
			s.SetContact("b", true, time.Now(), "")
		}, 2, 0, 2},
		{"a node leaves", func() { s.SetFleet([]Node{{Address: "a"}}) }, 0, 0, 1},
		{"a node joins", func() { s.SetFleet([]Node{{Address: "a"}, {Address: "c"}}) }, 1, 0, 2},
		{"same fleet again", func() { s.SetFleet([]Node{{Address: "a"}, {Address: "c"}}) }, 0, 0, 2},
	}
	for _, st := range steps {
		st.change()
		got := count("k")
		if calls != st.classified {
			t.Errorf("%s: classify called %d times, want %d", st.name, calls, st.classified)
		}
		if got["in"] != st.in || got["out"] != st.out {
			t.Errorf("%s: counts %v, want in %d, out %d", st.name, got, st.in, st.out)
		}
	}
	held := count("k")
	s.SetConcern("a", "trust", Concern{InSync: true, Hash: "h"})
	s.SetContact("a", true, time.Now(), "")
	if count("k"); held["in"] != 0 || held["out"] != 2 {
		t.Errorf("a map CountNodes returned changed afterwards: %v", held)
	}
	if count("other"); calls != 2 {
		t.Errorf("a different classifier key classified %d nodes, want every one (2)", calls)
	}
}

// Each view shows what its owner wrote, and nothing else.
func TestViews(t *testing.T) {
	s := New()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.SetFleet([]Node{{Address: "a", Hostname: "agent-a"}, {Address: "b"}})
	s.SetConcern("a", reconciler.Trust, Concern{Hash: "h1", Checked: t0})
	s.SetConcern("b", reconciler.Trust, Concern{Hash: "h0", Checked: t0.Add(time.Minute)})
	s.SetConcern("a", reconciler.Placement, Concern{Hash: "c1"})
	s.SetConcern("b", reconciler.Conntrack, Concern{Hash: "h1", Checked: t0.Add(time.Hour)})

	ta := s.TrustApplied()
	if !ta.LastPass.Equal(t0.Add(time.Minute)) || !slices.Equal(ta.Missing("h1"), []string{"b"}) || len(ta.Missing("h0")) != 1 {
		t.Errorf("TrustApplied = %+v", ta)
	}
	cp := s.CertificatePlacement()
	want := []PlacedNode{{Address: "a", Hostname: "agent-a", Hash: "c1"}, {Address: "b"}}
	if !slices.Equal(cp.Nodes, want) || !slices.Equal(cp.Missing("c1"), []string{"b"}) {
		t.Errorf("CertificatePlacement = %+v", cp)
	}
	if a := s.AppPlacement("/registry"); a.Observed {
		t.Errorf("an app never observed: %+v", a)
	}
	s.SetApp(App{ID: "/registry", Hosts: []string{"agent-a"}, RestartedForGeneration: 3})
	if a := s.AppPlacement("/registry"); !a.Observed || !slices.Equal(a.Hosts, []string{"agent-a"}) || a.RestartedForGeneration != 3 {
		t.Errorf("AppPlacement = %+v", a)
	}
	if !s.FleetListed().IsZero() {
		t.Error("fleet listed before discovery said so")
	}
	s.SetFleetListed(t0)
	if !s.FleetListed().Equal(t0) {
		t.Errorf("FleetListed = %v", s.FleetListed())
	}
}
