// Package status shows the operator's picture of the cluster to people: an
// HTML page, the same as JSON at /api/status, and a terminal rendering for
// `registry-operator status`. Everything comes from the state store and the
// config in force; nothing here reaches out to nodes or Marathon, so a slow
// or broken cluster never makes the page slow.
package status

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// ConfigInfo is what the status page tells about the config and the
// instance. The provider must keep secrets out of SpecYAML: the spec only
// names secret files, and config.Source.Info redacts URL user info and
// secret-looking env values (v1alpha1.Registry.Redact).
type ConfigInfo struct {
	// Path is the config file being watched.
	Path string `json:"path"`
	// SpecYAML is the spec in force (defaults applied), as YAML.
	SpecYAML string `json:"spec"`
	// LoadedAt is when the spec in force was loaded.
	LoadedAt time.Time `json:"loadedAt"`
	// LastReloadError is why the file on disk was last rejected; "" when
	// the last reload succeeded.
	LastReloadError string `json:"lastReloadError,omitempty"`
	// Mode is reconcile.mode of the spec in force: enforce or report.
	Mode string `json:"mode,omitempty"`
	// Instance identifies this process (host:port or hostname).
	Instance string `json:"instance,omitempty"`
	// Leader identifies the instance that reconciles, when known.
	Leader string `json:"leader,omitempty"`
	// IsLeader is true when this instance reconciles (always, without
	// leader election).
	IsLeader bool   `json:"isLeader"`
	Version  string `json:"version,omitempty"`
}

// ConfigInfoFunc returns the current ConfigInfo; it is called per request
// and must not block.
type ConfigInfoFunc func() ConfigInfo

// Node states, the same words as the registry_operator_nodes metric.
const (
	NodeInSync      = metrics.NodeInSync
	NodeOutOfSync   = metrics.NodeOutOfSync
	NodeUnreachable = metrics.NodeUnreachable
)

// Status is the JSON document at /api/status. Fields are only ever added.
type Status struct {
	GeneratedAt time.Time `json:"generatedAt"`
	// InSync is true when nothing in OutOfSync needs attention.
	InSync    bool   `json:"inSync"`
	OutOfSync []Item `json:"outOfSync"`

	Config       ConfigInfo               `json:"config"`
	Reconcilers  []state.ReconcilerStatus `json:"reconcilers"`
	Certificates state.PKI                `json:"certificates"`
	// PullPassword is absent when auth (and so the pull password) is off.
	PullPassword *PullPassword `json:"pullPassword,omitempty"`
	// Maintenance is absent when spec.maintenance is.
	Maintenance *state.Maintenance `json:"maintenance,omitempty"`
	Apps        []state.App        `json:"apps"`
	Probe       state.Probe        `json:"probe"`
	Nodes       []Node             `json:"nodes"`
	NodeCounts  map[string]int     `json:"nodeCounts"`
}

// Item is one thing that differs from the spec or needs attention.
type Item struct {
	// Kind is config, leader, reconciler, certificate, pull password, app,
	// probe or node.
	Kind string `json:"kind"`
	// Name is the node address, app id, certificate or reconciler name.
	Name string `json:"name"`
	// Reconciler owns the item, when one does.
	Reconciler string `json:"reconciler,omitempty"`
	Reason     string `json:"reason"`
}

func (i Item) String() string {
	s := i.Kind + " " + i.Name
	if i.Reconciler != "" && i.Reconciler != i.Name {
		s += " (" + i.Reconciler + ")"
	}
	return s + ": " + i.Reason
}

// Node is a node as the store holds it, plus its overall state.
type Node struct {
	state.Node
	// State is in_sync, out_of_sync or unreachable.
	State string `json:"state"`
}

// nodeConcerns are the per-node reconcilers, in the order the page shows them.
var nodeConcerns = []string{reconciler.Trust, reconciler.Conntrack, reconciler.Placement, reconciler.Credentials}

// Build assembles the status from the store and the config info at now.
func Build(store *state.Store, cfg ConfigInfo, now time.Time) Status {
	s := Status{
		GeneratedAt:  now,
		Config:       cfg,
		Reconcilers:  store.Reconcilers(),
		Certificates: store.PKI(),
		Apps:         store.Apps(),
		Probe:        store.Probe(),
		NodeCounts:   map[string]int{NodeInSync: 0, NodeOutOfSync: 0, NodeUnreachable: 0},
	}
	s.PullPassword = pullPassword(store, s.Reconcilers)
	s.Maintenance = maintenance(store)
	nodes := store.Nodes()
	s.Nodes = make([]Node, 0, len(nodes))
	for _, n := range nodes {
		sn := Node{Node: n, State: nodeState(n)}
		s.NodeCounts[sn.State]++
		s.Nodes = append(s.Nodes, sn)
	}
	// Lists are [] rather than null in JSON, so clients need no special case.
	s.Reconcilers = nonNil(s.Reconcilers)
	s.Apps = nonNil(s.Apps)
	s.Nodes = nonNil(s.Nodes)
	s.OutOfSync = outOfSync(s)
	s.InSync = len(s.OutOfSync) == 0
	return s
}

func nodeState(n state.Node) string {
	if !n.Reachable {
		return NodeUnreachable
	}
	for _, c := range n.Concerns {
		if !c.InSync {
			return NodeOutOfSync
		}
	}
	return NodeInSync
}

// outOfSync lists what needs attention, most fundamental first.
func outOfSync(s Status) []Item {
	items := []Item{}
	add := func(kind, name, rec, reason string) {
		items = append(items, Item{Kind: kind, Name: name, Reconciler: rec, Reason: reason})
	}
	if s.Config.LastReloadError != "" {
		add("config", s.Config.Path, "", "the file on disk was rejected, an older spec is in force: "+s.Config.LastReloadError)
	}
	if !s.Config.IsLeader {
		leader := s.Config.Leader
		if leader == "" {
			leader = "unknown"
		}
		add("leader", s.Config.Instance, "", "this instance does not reconcile, its view may be stale; ask the leader ("+leader+")")
	}
	for _, r := range s.Reconcilers {
		if r.Enabled && r.LastResult == metrics.ResultError {
			add("reconciler", r.Name, r.Name, orDefault(r.LastError, "last reconcile failed"))
		}
	}
	if certificatesOn(s) {
		p := s.Certificates
		if !p.Ready {
			add("certificate", "server", reconciler.Certificates, orDefault(p.Reason, "not ready"))
		}
		for _, pending := range p.Pending {
			add("certificate", "pending", reconciler.Certificates, pending)
		}
	}
	for _, r := range s.PullPassword.problems() {
		add("pull password", "pull", reconciler.PullSecret, r)
	}
	for _, a := range s.Apps {
		if r := appProblem(a); r != "" {
			add("app", a.ID, reconciler.App, r)
		}
	}
	if !s.Probe.Checked.IsZero() && !s.Probe.Success {
		add("probe", "registry", reconciler.App, orDefault(s.Probe.Error, "probe failed"))
	}
	for _, n := range s.Nodes {
		if !n.Reachable {
			reason := "unreachable"
			if n.LastContact.IsZero() {
				reason = "not contacted yet"
			}
			if n.LastError != "" {
				reason += ": " + n.LastError
			}
			add("node", n.Address, "", reason)
			// The concerns of a node we cannot reach are stale: one item says it.
			continue
		}
		for _, rec := range sortedConcerns(n.Concerns) {
			if c := n.Concerns[rec]; !c.InSync {
				add("node", n.Address, rec, concernReason(c))
			}
		}
	}
	return items
}

// certificatesOn tells whether the certificates reconciler runs: from the
// manager's record when there is one, else from what the store holds.
func certificatesOn(s Status) bool {
	for _, r := range s.Reconcilers {
		if r.Name == reconciler.Certificates {
			return r.Enabled
		}
	}
	return s.Certificates.Mode != ""
}

func appProblem(a state.App) string {
	var parts []string
	switch {
	case !a.Exists:
		parts = append(parts, "does not exist in Marathon")
	case a.Healthy < a.Desired:
		parts = append(parts, fmt.Sprintf("%d of %d instances healthy", a.Healthy, a.Desired))
	}
	if !a.InSync && len(a.Diff) > 0 {
		parts = append(parts, "differs: "+strings.Join(a.Diff, "; "))
	} else if !a.InSync && a.Exists {
		parts = append(parts, "differs from the spec")
	}
	if a.LastError != "" {
		parts = append(parts, a.LastError)
	}
	return strings.Join(parts, "; ")
}

func concernReason(c state.Concern) string {
	var parts []string
	if c.Error != "" {
		parts = append(parts, c.Error)
	}
	if c.Detail != "" {
		parts = append(parts, c.Detail)
	}
	parts = append(parts, c.Changes...)
	if len(parts) == 0 {
		return "out of sync"
	}
	return strings.Join(parts, "; ")
}

// sortedConcerns orders the known node reconcilers first, then any other.
func sortedConcerns(m map[string]state.Concern) []string {
	var out []string
	for _, k := range nodeConcerns {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(nodeConcerns, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
