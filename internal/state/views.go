package state

import (
	"maps"
	"slices"
	"time"

	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// The views below are the only ways one reconciler reads what another
// wrote. Each names its owner (the one writer) and its readers; a reader
// never looks at another reconciler's slice except through a view, and
// never at the manager's bookkeeping (ReconcilerStatus), which records
// that a reconcile ran, not what it established.
//
//	view                  owner        readers        written through
//	TrustApplied          trust        certificates   SetConcern(_, reconciler.Trust, _)
//	FleetListed           discovery    certificates   SetFleetListed
//	AppPlacement          app          trust, certificates  SetApp
//	CertificatePlacement  placement    app            SetConcern(_, reconciler.Placement, _)
//	RegistryConfigPlacement  placement  app         SetRegistryConfigPlaced (registryconfig.go)
//	PullSecret            pullsecret   placement, credentials  SetPullSecret (pullsecret.go)
//	CredentialsCarried    credentials  pullsecret     SetConcern(_, reconciler.Credentials, _) (credentials.go)
//	RegistryMaintenance   maintenance  placement, app (rendered config)  SetRegistryMaintenance (maintenance.go)
//	RegistryPullUsers     placement    pullsecret     SetHtpasswdHeld (registryusers.go)
//
// Which agents may run the registry is not a view: it follows from the
// spec alone (the app's hostname constraints), so trust and placement
// both compute it from the spec.

// TrustApplied is which CA bundle each node carries, as the trust
// reconciler last found or made it. The certificate reconciler switches
// the served certificate to a new CA only once every node carries a bundle
// with it, so no node ever trusts neither issuer.
type TrustApplied struct {
	// Nodes maps every node of the fleet to the hash of the bundle it
	// carries ("" until trust has seen it carry the bundle it wants).
	Nodes map[string]string
	// LastPass is when trust last looked at a node, successfully or not;
	// a gate waiting for trust after a bundle change needs a pass since.
	LastPass time.Time
}

// Missing lists, sorted, the nodes that do not carry bundle hash.
func (t TrustApplied) Missing(hash string) []string {
	var out []string
	for addr, h := range t.Nodes {
		if h != hash {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}

// TrustApplied returns the trust reconciler's view.
func (s *Store) TrustApplied() TrustApplied {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := TrustApplied{Nodes: make(map[string]string, len(s.nodes))}
	for addr, n := range s.nodes {
		c := n.Concerns[reconciler.Trust]
		v.Nodes[addr] = c.Hash
		if c.Checked.After(v.LastPass) {
			v.LastPass = c.Checked
		}
	}
	return v
}

// FleetListed is when the discovery reconciler last established the fleet
// (the agent list answered, or nodes are not managed): before that, an
// empty fleet proves nothing.
func (s *Store) FleetListed() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fleetListed
}

// SetFleetListed records that discovery established the fleet at t.
func (s *Store) SetFleetListed(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fleetListed = t
}

// AppPlacement is where one Marathon app runs and which certificate its
// tasks were started for, as the app reconciler last saw it.
type AppPlacement struct {
	// Observed: the app reconciler has looked at the app at least once.
	Observed bool
	// Hosts are the agents its tasks run on (hostnames or IPs, as
	// Marathon reports them).
	Hosts []string
	// RestartedForGeneration is the PKI generation the app was last
	// started or restarted for: its tasks serve that certificate.
	RestartedForGeneration int64
}

// AppPlacement returns the app reconciler's view of app id.
func (s *Store) AppPlacement(id string) AppPlacement {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.apps[id]
	return AppPlacement{Observed: ok, Hosts: slices.Clone(a.Hosts), RestartedForGeneration: a.RestartedForGeneration}
}

// PlacedNode is one node as the placement reconciler left it.
type PlacedNode struct {
	Address, Hostname string
	// Hash is the hash of the certificate chain placed there ("" none
	// yet; on an agent that is no candidate, the current one: it needs none).
	Hash string
}

// CertificatePlacement is which server certificate each node has for the
// registry's hostPath volume. The app reconciler restarts the registry for
// a new certificate only once its agents have it.
type CertificatePlacement struct {
	Nodes []PlacedNode // sorted by address
}

// CertificatePlacement returns the placement reconciler's view.
func (s *Store) CertificatePlacement() CertificatePlacement {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := CertificatePlacement{Nodes: make([]PlacedNode, 0, len(s.nodes))}
	for _, addr := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[addr]
		v.Nodes = append(v.Nodes, PlacedNode{Address: addr, Hostname: n.Hostname, Hash: n.Concerns[reconciler.Placement].Hash})
	}
	return v
}

// Missing lists, sorted, the nodes that do not have chain hash.
func (p CertificatePlacement) Missing(hash string) []string {
	var out []string
	for _, n := range p.Nodes {
		if n.Hash != hash {
			out = append(out, n.Address)
		}
	}
	return out
}
