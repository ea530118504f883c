package operator

import (
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

func TestLeaderElectionFixedOnReload(t *testing.T) {
	le := func(edit func(*v1alpha1.LeaderElectionSpec)) *v1alpha1.Registry {
		l := &v1alpha1.LeaderElectionSpec{ZooKeeper: []string{"127.0.0.1:2181"}, Path: "/registry/leader",
			SessionTimeout: v1alpha1.Duration{Duration: 10 * time.Second}, StateStore: v1alpha1.StateStoreSharedDir}
		if edit != nil {
			edit(l)
		}
		return &v1alpha1.Registry{Spec: v1alpha1.Spec{LeaderElection: l}}
	}
	inForce := le(nil)
	if err := leaderElectionFixed(inForce, le(nil)); err != nil {
		t.Fatalf("unchanged leaderElection rejected: %v", err)
	}
	changed := map[string]*v1alpha1.Registry{
		"path":        le(func(l *v1alpha1.LeaderElectionSpec) { l.Path = "/other" }),
		"servers":     le(func(l *v1alpha1.LeaderElectionSpec) { l.ZooKeeper = append(l.ZooKeeper, "127.0.0.2:2181") }),
		"timeout":     le(func(l *v1alpha1.LeaderElectionSpec) { l.SessionTimeout.Duration = time.Minute }),
		"stateStore":  le(func(l *v1alpha1.LeaderElectionSpec) { l.StateStore = v1alpha1.StateStoreZooKeeper }),
		"removed":     {},
		"digest file": le(func(l *v1alpha1.LeaderElectionSpec) { l.DigestFile = "/etc/ro/digest" }),
	}
	for name, next := range changed {
		err := leaderElectionFixed(inForce, next)
		if err == nil || !strings.HasPrefix(err.Error(), "spec.leaderElection: ") ||
			!strings.Contains(err.Error(), "restart the operator to change leader election") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if err := leaderElectionFixed(&v1alpha1.Registry{}, inForce); err == nil {
		t.Error("turning leader election on at runtime accepted")
	}
}
