package state

import (
	"slices"
	"testing"
	"time"
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
