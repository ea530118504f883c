package operator

import (
	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/leader"
	"github.com/registry-operator/registry-operator/internal/metrics"
)

// newElector joins the ZooKeeper election the spec names. leaderElection
// takes effect at start only: changing it needs a restart.
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
