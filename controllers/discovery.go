package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// FleetKey is the one key the discovery reconciler serves.
const FleetKey = "fleet"

// AgentLister lists a Mesos master's active agents (nodes.Discoverer).
type AgentLister interface {
	Mesos(ctx context.Context, baseURL string) ([]nodes.Agent, error)
}

// ConnectionForgetter drops the connection of a node that left (nodes.Executor).
type ConnectionForgetter interface {
	Forget(node string)
}

// Discovery keeps the store's fleet equal to the agents Mesos reports plus
// nodes.static, and asks the node reconcilers to look at every node.
type Discovery struct {
	Deps
	opts DiscoveryOptions
}

// DiscoveryOptions are the discovery reconciler's own dependencies.
type DiscoveryOptions struct {
	// Agents queries Mesos (NewMesosLister in production).
	Agents AgentLister
	// Conns, when set, drops the connections of nodes that left.
	Conns ConnectionForgetter
	// Enqueue is how node keys reach the trust, conntrack and placement
	// reconcilers (manager.Enqueue).
	Enqueue func(reconciler, key string)
}

// NewDiscovery returns the discovery reconciler.
func NewDiscovery(d Deps, o DiscoveryOptions) *Discovery {
	return &Discovery{Deps: d.named(reconciler.Discovery), opts: o}
}

// Reconcile implements manager.Reconciler. A failed Mesos query keeps the
// last known fleet (an unreachable master must not look like "no agents")
// and still has every known node looked at.
func (d *Discovery) Reconcile(ctx context.Context, key string) (manager.Result, error) {
	spec := d.Spec()
	if !spec.NodesEnabled() {
		d.setFleet(spec, nil)
		d.Store.SetFleetListed(d.Clock.Now())
		return manager.Result{}, nil
	}
	var mesos []nodes.Agent
	if m := spec.Nodes.Mesos; m != nil {
		var err error
		mesos, err = d.opts.Agents.Mesos(ctx, m.URL)
		if err != nil {
			d.enqueueAll(spec)
			updateNodesGauge(spec, d.Store, d.Metrics)
			return manager.Result{}, fmt.Errorf("discover agents (keeping the last known %d nodes): %w",
				d.Store.Len(), err)
		}
		mesos = d.checked(mesos)
	}
	agents := nodes.Merge(mesos, nodes.Static(spec.Nodes.Static))
	fleet := make([]state.Node, 0, len(agents))
	for _, a := range agents {
		fleet = append(fleet, state.Node{Address: a.Address, Hostname: a.Hostname, Source: a.Source})
	}
	d.setFleet(spec, fleet)
	d.Store.SetFleetListed(d.Clock.Now())
	d.enqueueAll(spec)
	return manager.Result{}, nil
}

// checked drops agents whose address or hostname is not an IP address or a
// DNS name: they are never dialled, stored or used as labels.
func (d *Discovery) checked(agents []nodes.Agent) []nodes.Agent {
	ok, bad := nodes.CheckedAgents(agents)
	for _, err := range bad {
		d.Log.Info("mesos agent skipped: not a valid IP address or DNS name", "reason", err.Error())
	}
	d.Metrics.RejectedAgents.Add(float64(len(bad)))
	return ok
}

func (d *Discovery) setFleet(spec *v1alpha1.Spec, fleet []state.Node) {
	before := d.Store.Len()
	removed := d.Store.SetFleet(fleet)
	for _, addr := range removed {
		d.Metrics.ForgetTarget(addr)
		if d.opts.Conns != nil {
			d.opts.Conns.Forget(addr)
		}
	}
	if len(removed) > 0 || len(fleet) != before {
		d.Log.Info("fleet changed", "nodes", len(fleet), "removed", removed)
	}
	updateNodesGauge(spec, d.Store, d.Metrics)
}

func (d *Discovery) enqueueAll(spec *v1alpha1.Spec) {
	rs := nodeReconcilers(spec)
	for _, addr := range d.Store.Addresses() {
		for _, r := range rs {
			d.opts.Enqueue(r, addr)
		}
	}
}

// DiscoveryResync is the manager's resync list for the discovery reconciler.
func DiscoveryResync(*v1alpha1.Spec) []string { return []string{FleetKey} }

// discoveryTimeout bounds one Mesos query when the caller set no deadline.
const discoveryTimeout = 30 * time.Second

// NewMesosLister returns the production AgentLister.
func NewMesosLister() *nodes.Discoverer { return &nodes.Discoverer{Timeout: discoveryTimeout} }
