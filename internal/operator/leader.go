package operator

import (
	"reflect"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/leader"
)

// joinElection sets up what leaderElection asks for. A run joins the
// election, and with stateStore zookeeper keeps the PKI in ZooKeeper. A
// plan never stands in the election: it only reads the shared PKI state,
// through a store that refuses every write. leaderElection takes effect at
// start only: a reload that changes it is rejected (leaderElectionFixed).
func (o *Operator) joinElection(le *v1alpha1.LeaderElectionSpec, d *Deps) error {
	zkStore := le.StateStore == v1alpha1.StateStoreZooKeeper
	if o.opts.Plan && !zkStore {
		return nil
	}
	cfg, err := electionConfig(le, o.opts)
	if err != nil {
		return err
	}
	if o.opts.Plan {
		r, err := leader.OpenReadOnlyPKIStore(cfg)
		if err != nil {
			return err
		}
		o.closers = append(o.closers, r.Close)
		d.PKIStore = r
		return nil
	}
	cfg.Leading = o.metrics.Leader
	el, err := leader.New(cfg)
	if err != nil {
		return err
	}
	o.elector, o.leader = el, el
	o.closers = append(o.closers, el.Close)
	if zkStore {
		d.PKIStore = leader.NewPKIStore(el)
	}
	return nil
}

// electionConfig is the ZooKeeper election the spec names.
func electionConfig(le *v1alpha1.LeaderElectionSpec, opts Options) (leader.Config, error) {
	var digest *leader.Digest
	if le.DigestFile != "" {
		d, err := leader.ReadDigestFile(le.DigestFile)
		if err != nil {
			return leader.Config{}, err
		}
		digest = d
	}
	return leader.Config{
		Servers: le.ZooKeeper, Path: le.Path, SessionTimeout: le.SessionTimeout.Duration,
		Self: leader.Self(opts.Version), Digest: digest, Log: opts.Log.WithName("leader"),
	}, nil
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
