package operator

import (
	"reflect"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/leader"
	"github.com/registry-operator/registry-operator/internal/metrics"
)

// newElector joins the ZooKeeper election the spec names. leaderElection
// takes effect at start only: a reload that changes it is rejected
// (leaderElectionFixed) and changing it needs a restart.
func newElector(le *v1alpha1.LeaderElectionSpec, opts Options, m *metrics.Metrics) (*leader.Elector, error) {
	var digest *leader.Digest
	if le.DigestFile != "" {
		d, err := leader.ReadDigestFile(le.DigestFile)
		if err != nil {
			return nil, err
		}
		digest = d
	}
	return leader.New(leader.Config{
		Servers: le.ZooKeeper, Path: le.Path, SessionTimeout: le.SessionTimeout.Duration,
		Self: leader.Self(opts.Version), Digest: digest,
		Log: opts.Log.WithName("leader"), Leading: m.Leader,
	})
}

// leaderElectionFixed refuses a reload that changes leaderElection: the
// running instance holds a session and maybe a term under the settings in
// force, and re-electing under new ones at runtime could leave two
// instances leading under different paths or ensembles. The edit is
// rejected like an invalid one, so the status page shows why.
func leaderElectionFixed(inForce, next *v1alpha1.Registry) error {
	if reflect.DeepEqual(inForce.Spec.LeaderElection, next.Spec.LeaderElection) {
		return nil
	}
	return v1alpha1.FieldErrors{{Path: "spec.leaderElection", Reason: "differs from the settings in force, which take " +
		"effect at start only: restart the operator to change leader election (the last good spec stays in force until then)"}}
}
