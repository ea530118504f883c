package state

import (
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/reconciler"
)

func TestCredentialsCarried(t *testing.T) {
	s := New()
	s.SetFleet([]Node{{Address: "198.18.0.12"}, {Address: "198.18.0.11"}, {Address: "198.18.0.13"}})
	now := time.Now()
	s.SetContact("198.18.0.11", true, now, "")
	s.SetConcern("198.18.0.11", reconciler.Credentials, Concern{InSync: true, Hash: CredentialsHash(3)})
	s.SetContact("198.18.0.12", false, now, "connection refused")
	s.SetConcern("198.18.0.12", reconciler.Credentials, Concern{Hash: CredentialsHash(2)})
	// .13 answered trust but credentials has not looked yet.
	s.SetContact("198.18.0.13", true, now, "")
	s.SetConcern("198.18.0.13", reconciler.Trust, Concern{InSync: true, Hash: "bundle"})
	got := s.CredentialsCarried()
	want := []CarriedNode{{"198.18.0.11", true, 3}, {"198.18.0.12", false, 2}, {"198.18.0.13", true, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("node %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if CredentialsHash(0) != "" {
		t.Error("generation 0 must carry nothing")
	}
}
