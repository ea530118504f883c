package operator

import (
	"context"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/controllers"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// wiring is what setupReconcilers hands back: things to close at exit and
// background loops (event streams) that run while this instance leads.
type wiring struct {
	closers []func()
	runners []func(context.Context)
	// stoppers run once the manager has stopped, before this instance
	// lets go (SIGTERM, lost leadership).
	stoppers []func()
}

// setupReconcilers registers every reconciler with the manager. The whole
// data flow between reconcilers is visible here: who enqueues whom.
func setupReconcilers(m *manager.Manager, d Deps) (wiring, error) {
	var w wiring

	rd := controllers.Deps{Spec: d.Spec, Store: d.Store, Metrics: d.Metrics, Clock: d.Clock, Log: d.Log}
	// The certificates and the pull password share one PKI state set; each
	// reconciler keeps its own part of it, under one lock.
	openPKI := func(s *v1alpha1.Spec) pki.Store { return pki.NewDirStore(s.TLS.StateDir) }
	if d.PKIStore != nil {
		openPKI = func(*v1alpha1.Spec) pki.Store { return d.PKIStore }
	}
	var pkiSet pki.Shared
	certOpts := controllers.CertificatesOptions{PKIStore: func(s *v1alpha1.Spec) pki.Store {
		return pkiSet.Part(openPKI(s), pki.CertificateFiles...)
	}}
	certs := controllers.NewCertificates(rd, certOpts)
	m.Add(manager.Options{Name: reconciler.Certificates, Reconciler: certs,
		Enabled: when(d.Spec, (*v1alpha1.Spec).TLSEnabled),
		Resync:  func() []string { return []string{controllers.CertificatesKey} }})
	pull := controllers.NewPullSecret(rd, controllers.PullSecretOptions{PKIStore: func(s *v1alpha1.Spec) pki.Store {
		return pkiSet.Part(openPKI(s), pki.PullPasswordFiles...)
	}, RegistryAccepts: registryAccepts(d)})
	m.Add(manager.Options{Name: reconciler.PullSecret, Reconciler: pull,
		Enabled: when(d.Spec, (*v1alpha1.Spec).CredentialsEnabled),
		Resync:  func() []string { return []string{controllers.PullSecretKey} }})

	// Nodes: discovery lists the agents and enqueues each one's key for the
	// node reconcilers, which share one SSH client (and one SFTP
	// session) per node through the executor.
	exec := nodes.NewExecutor(d.Metrics, d.Clock, d.Log.WithName("ssh"))
	w.closers = append(w.closers, exec.Close)
	disc := controllers.NewDiscovery(rd, controllers.DiscoveryOptions{Agents: controllers.NewMesosLister(), Conns: exec,
		Enqueue: m.Enqueue})
	m.Add(manager.Options{Name: reconciler.Discovery, Reconciler: disc,
		Enabled: when(d.Spec, (*v1alpha1.Spec).NodesEnabled), Resync: keysOf(d.Spec, controllers.DiscoveryResync)})
	nd := controllers.NodeOptions{Exec: exec}
	// The executor bounds SSH sessions; workers only need not be fewer.
	workers := d.Spec().SSHConcurrency()
	nodeRecs := []struct {
		name    string
		rec     manager.Reconciler
		enabled func(*v1alpha1.Spec) bool
	}{
		{reconciler.Trust, controllers.NewTrust(rd, nd), (*v1alpha1.Spec).TrustEnabled},
		{reconciler.Conntrack, controllers.NewConntrack(rd, nd), (*v1alpha1.Spec).ConntrackEnabled},
		{reconciler.Placement, controllers.NewPlacement(rd, nd), (*v1alpha1.Spec).PlacementEnabled},
		{reconciler.Credentials, controllers.NewCredentials(rd, nd), (*v1alpha1.Spec).CredentialsEnabled},
	}
	for _, r := range nodeRecs {
		m.Add(manager.Options{Name: r.name, Reconciler: r.rec, Enabled: when(d.Spec, r.enabled), MaxConcurrent: workers,
			BaseBackoff: 2 * time.Second, MaxBackoff: 5 * time.Minute})
	}
	if d.Once {
		// One pass per node reconciler and the node is done: hang up
		// rather than hold every node's sshd session to the end.
		exec.ReleaseAfter(func() int {
			n := 0
			for _, r := range nodeRecs {
				if r.enabled(d.Spec()) {
					n++
				}
			}
			return n
		}, onceIdleRelease)
	}

	app := controllers.NewApp(rd, controllers.AppOptions{Owner: d.Registry().Metadata.Name})
	m.Add(manager.Options{Name: reconciler.App, Reconciler: app, MaxConcurrent: 2,
		Enabled: func() bool { s := d.Spec(); return s.AppEnabled() || s.UIEnabled() },
		Resync:  keysOf(d.Spec, controllers.AppKeys)})
	w.runners = append(w.runners, func(ctx context.Context) {
		enqueue := func(key string) { m.Enqueue(reconciler.App, key) }
		if err := app.Watch(ctx, enqueue); err != nil && ctx.Err() == nil {
			d.Log.Error(err, "marathon event stream stopped; the periodic resync continues")
		}
	})

	// A new trust bundle or server certificate must reach the nodes and the
	// registry at once, not at the next resync; a waiting CA rotation moves
	// as soon as nodes or the app report progress.
	enqueueApps := func() {
		for _, k := range controllers.AppKeys(d.Spec()) {
			m.Enqueue(reconciler.App, k)
		}
	}
	d.Store.OnChange(state.TopicPKI, enqueueApps)
	// Only the reconcilers that distribute certificates: conntrack has
	// nothing to redo, and in a one-shot run a second conntrack pass would
	// dial nodes already done and hung up.
	d.Store.OnChange(state.TopicPKI, func() {
		for _, addr := range d.Store.Addresses() {
			m.Enqueue(reconciler.Trust, addr)
			m.Enqueue(reconciler.Placement, addr)
		}
	})
	// New or retired pull users go into the htpasswd file on the registry's agents.
	d.Store.OnChange(state.TopicPullSecret, func() {
		for _, addr := range d.Store.Addresses() {
			m.Enqueue(reconciler.Placement, addr)
		}
	})
	// Only a CA rotation waits on nodes and apps; outside one, waking the
	// certificates reconciler for every node that reports in would run it
	// once per node per pass for nothing.
	wake := func() {
		if d.Store.RotationUnderWay() {
			m.Enqueue(reconciler.Certificates, controllers.CertificatesKey)
		}
	}
	d.Store.OnChange(state.TopicNodes, wake)
	d.Store.OnChange(state.TopicApp, wake)
	// A new or dropped pull password goes to every agent at once; a
	// rotation waiting for agents moves on once the last one reports in.
	d.Store.OnChange(state.TopicPullSecret, func() {
		for _, addr := range d.Store.Addresses() {
			m.Enqueue(reconciler.Credentials, addr)
		}
	})
	d.Store.OnChange(state.TopicNodes, func() {
		if controllers.PullRotationCanMove(d.Store) {
			m.Enqueue(reconciler.PullSecret, controllers.PullSecretKey)
		}
	})
	// A rotation hands the new pull password to agents as soon as the
	// htpasswd file on every agent that may run the registry holds it.
	d.Store.OnChange(state.TopicRegistryUsers, func() {
		if controllers.PullHandoverReady(d.Store) {
			m.Enqueue(reconciler.PullSecret, controllers.PullSecretKey)
		}
	})

	setupMaintenance(m, d, rd, &w, exec, func(s *v1alpha1.Spec) pki.Store {
		return pkiSet.Part(openPKI(s), pki.GCWindowFiles...)
	})
	return w, nil
}

// registryAccepts is the pullsecret reconciler's gate: a new pull user is
// accepted once placement has written it into the htpasswd file on every
// agent that may run the registry (the RegistryPullUsers view). Without
// placement the operator writes no htpasswd file and cannot know: no gate.
func registryAccepts(d Deps) func(user string) bool {
	return func(user string) bool {
		if s := d.Spec(); s == nil || !s.PlacementEnabled() {
			return true
		}
		return d.Store.RegistryPullUsers().Accepts(user)
	}
}

// onceIdleRelease closes a node's connection in a one-shot run when not
// every node reconciler gets to it soon (one waits for a CA, or failed and
// backs off). It must outlast the gap between two reconcilers' visits to a
// node, which on a loaded machine is a few handshakes long (each worker
// dials in turn), or the second visit dials again.
const onceIdleRelease = 10 * time.Second
