// Package state is the operator's in-memory picture of the cluster. Each
// reconciler owns one slice and is its only writer; the metrics collector
// and the status page read it all, and other reconcilers read it only
// through the views in views.go. Readers get copies, so nothing a reader
// holds changes under it.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Topics name the slices whose change other reconcilers react to.
const (
	TopicPKI   = "pki"   // trust bundle or server certificate changed
	TopicNodes = "nodes" // a node observation changed
	TopicApp   = "app"   // an app's observed state changed
	// TopicPullSecret: the pull users the registry must accept changed.
	TopicPullSecret = "pullsecret"
	// TopicRegistryConfig: a node's placed registry config.yml changed.
	TopicRegistryConfig = "registryconfig"
)

// CertInfo describes one certificate for status and metrics.
type CertInfo struct {
	Subject      string    `json:"subject"`
	Issuer       string    `json:"issuer"`
	Serial       string    `json:"serial"`
	NotBefore    time.Time `json:"notBefore"`
	NotAfter     time.Time `json:"notAfter"`
	RenewalTime  time.Time `json:"renewalTime"`
	SHA256       string    `json:"sha256"`
	DNSNames     []string  `json:"dnsNames,omitempty"`
	IPAddresses  []string  `json:"ipAddresses,omitempty"`
	SubjectKeyID string    `json:"subjectKeyId,omitempty"`
}

// PKI is the certificate reconciler's slice.
type PKI struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	Mode   string `json:"mode"`
	// Bundle is trust-bundle.crt: every CA that nodes must trust right now.
	Bundle     []byte `json:"-"`
	BundleHash string `json:"bundleHash"`
	// ServerChain is tls.crt (server certificate followed by the CA);
	// ServerKey is tls.key. The key never appears in JSON or logs.
	ServerChain []byte `json:"-"`
	ServerKey   []byte `json:"-"`
	// ServerHash is the sha256 of ServerChain: placement compares by it.
	ServerHash string     `json:"serverHash"`
	Server     CertInfo   `json:"server"`
	CAs        []CertInfo `json:"cas"`
	// Rotation names the CA rotation phase, "" when none is under way.
	Rotation string `json:"rotation,omitempty"`
	// Generation increases each time the served certificate changes; the
	// app reconciler restarts the registry when it sees a new one.
	Generation int64 `json:"generation"`
	// Pending lists what the reconciler would issue or renew, and why.
	Pending []string `json:"pending,omitempty"`
}

// Concern is one reconciler's view of one node.
type Concern struct {
	InSync bool   `json:"inSync"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
	// Changes lists what the reconciler changed, or in report mode would
	// change, on its last pass ("create /etc/x (sha256 ab12..)", "sysctl 0 -> 1").
	Changes []string `json:"changes,omitempty"`
	// Hash is what the node carries (bundle hash for trust, chain hash for
	// placement), so the certificate reconciler can tell when a new bundle
	// has reached every node.
	Hash string `json:"hash,omitempty"`
	// SyncedWant is what the spec wanted when the node was last in sync,
	// kept through report-mode and failed passes while the spec wants the
	// same, so a later repair is still told apart from a rollout.
	SyncedWant string    `json:"syncedWant,omitempty"`
	Checked    time.Time `json:"checked"`
}

// Node is one agent as the node reconcilers last saw it.
type Node struct {
	Address     string             `json:"address"`
	Hostname    string             `json:"hostname,omitempty"`
	Source      string             `json:"source"` // mesos | static
	Reachable   bool               `json:"reachable"`
	LastContact time.Time          `json:"lastContact"`
	LastError   string             `json:"lastError,omitempty"`
	Concerns    map[string]Concern `json:"concerns"`
}

// App is the app reconciler's slice for one Marathon app.
type App struct {
	ID        string    `json:"id"`
	Exists    bool      `json:"exists"`
	InSync    bool      `json:"inSync"`
	Desired   int       `json:"desired"`
	Running   int       `json:"running"`
	Healthy   int       `json:"healthy"`
	Version   string    `json:"version,omitempty"`
	Hosts     []string  `json:"hosts,omitempty"`
	Diff      []string  `json:"diff,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	Checked   time.Time `json:"checked"`
	// ServedSerial is the certificate serial the TLS probe last saw.
	ServedSerial string `json:"servedSerial,omitempty"`
	// RestartedForGeneration is the PKI generation the registry was last
	// restarted for.
	RestartedForGeneration int64 `json:"restartedForGeneration"`
}

// Probe is the last TLS probe of the registry.
type Probe struct {
	Success  bool          `json:"success"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
	Serial   string        `json:"serial,omitempty"`
	Checked  time.Time     `json:"checked"`
}

// ReconcilerStatus is the manager's record of one reconciler.
type ReconcilerStatus struct {
	Name        string    `json:"name"`
	Enabled     bool      `json:"enabled"`
	LastResult  string    `json:"lastResult,omitempty"` // success | error | requeue
	LastError   string    `json:"lastError,omitempty"`
	LastRun     time.Time `json:"lastRun"`
	LastSuccess time.Time `json:"lastSuccess"`
}

// Store holds every slice. The zero value is not usable; call New.
type Store struct {
	mu         sync.RWMutex
	pki        PKI
	pullSecret PullSecret
	// configPlaced: the RegistryConfigPlacement view (registryconfig.go).
	configPlaced map[string]string
	// appConfigPlaced: AppConfigPlacement, by app id (appconfig.go).
	appConfigPlaced map[string]map[string]string
	// readOnly and maintenance: the maintenance reconciler's (maintenance.go).
	readOnly    RegistryMaintenance
	maintenance Maintenance
	// htpasswdHeld: the RegistryPullUsers view (registryusers.go).
	htpasswdHeld map[string]HtpasswdHeld
	nodes        map[string]Node
	apps         map[string]App
	probe        Probe
	reconcilers  map[string]*ReconcilerStatus // pointers: see UpdateReconciler
	listeners    map[string][]func()

	fleetListed time.Time // FleetListed: discovery's view

	// counts caches what CountNodes found, node by node.
	counts nodeCounts
}

// nodeCounts is CountNodes' cache: each node's class, their counts, and
// the nodes whose class may have changed since.
type nodeCounts struct {
	key    string
	counts map[string]int // replaced, never changed, once returned
	class  map[string]string
	dirty  map[string]struct{}
}

// touch marks addr for reclassification: its membership, reachability or
// a concern's InSync changed. Callers hold s.mu.
func (s *Store) touch(addr string) {
	if s.counts.class != nil {
		s.counts.dirty[addr] = struct{}{}
	}
}

// New returns an empty store.
func New() *Store {
	return &Store{
		nodes:       map[string]Node{},
		apps:        map[string]App{},
		reconcilers: map[string]*ReconcilerStatus{},
		listeners:   map[string][]func(){},
	}
}

// OnChange registers fn to run (outside the lock) after topic changes.
// Listeners must not block: they enqueue work and return.
func (s *Store) OnChange(topic string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners[topic] = append(s.listeners[topic], fn)
}

func (s *Store) notify(topic string) {
	s.mu.RLock()
	fns := slices.Clone(s.listeners[topic])
	s.mu.RUnlock()
	for _, fn := range fns {
		fn()
	}
}

// PKI returns a copy of the certificate slice.
func (s *Store) PKI() PKI {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.pki
	p.CAs = slices.Clone(p.CAs)
	return p
}

// Bundle returns the published CA bundle: what a trust pass needs of the
// PKI, on every node and round, without PKI's copy of the certificate
// list. The bytes are shared (SetPKI replaces a bundle, never changes it):
// read them only.
func (s *Store) Bundle() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pki.Bundle
}

// RotationUnderWay reports whether a CA rotation phase is published.
func (s *Store) RotationUnderWay() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pki.Rotation != ""
}

// SetPKI replaces the certificate slice and notifies TopicPKI listeners when
// the bundle or the served certificate changed.
func (s *Store) SetPKI(p PKI) {
	s.mu.Lock()
	changed := p.BundleHash != s.pki.BundleHash || p.ServerHash != s.pki.ServerHash || p.Ready != s.pki.Ready
	s.pki = p
	s.mu.Unlock()
	if changed {
		s.notify(TopicPKI)
	}
}

// Nodes returns copies of every node, sorted by address.
func (s *Store) Nodes() []Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		n.Concerns = maps.Clone(n.Concerns)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// Len returns how many nodes the fleet has.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.nodes)
}

// Addresses returns every node's address, sorted.
func (s *Store) Addresses() []string {
	s.mu.RLock()
	out := slices.Collect(maps.Keys(s.nodes))
	s.mu.RUnlock()
	slices.Sort(out)
	return out
}

// CountNodes counts the nodes by the class classify gives each, without
// copying them. Node passes call it after every node, so it must not cost
// O(N) each time: each node's class is kept, and only nodes whose
// membership, reachability or a concern's InSync changed since (the only
// inputs a classifier may use) are classified again; a different key,
// which names the classifier, classifies every node. The returned map must
// not be changed.
func (s *Store) CountNodes(key string, classify func(*Node) string) map[string]int {
	s.mu.RLock()
	if c := s.counts; c.counts != nil && c.key == key && len(c.dirty) == 0 {
		s.mu.RUnlock()
		return c.counts
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.counts
	if c.counts == nil || c.key != key {
		*c = nodeCounts{key: key, counts: map[string]int{}, class: make(map[string]string, len(s.nodes)),
			dirty: map[string]struct{}{}}
		for addr, n := range s.nodes {
			k := classify(&n)
			c.class[addr] = k
			c.counts[k]++
		}
		return c.counts
	}
	if len(c.dirty) == 0 {
		return c.counts
	}
	counts := maps.Clone(c.counts)
	for addr := range c.dirty {
		if old, ok := c.class[addr]; ok {
			if counts[old]--; counts[old] == 0 {
				delete(counts, old)
			}
			delete(c.class, addr)
		}
		if n, ok := s.nodes[addr]; ok {
			k := classify(&n)
			c.class[addr] = k
			counts[k]++
		}
	}
	clear(c.dirty)
	c.counts = counts
	return counts
}

// Node returns one node.
func (s *Store) Node(addr string) (Node, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.nodes[addr]
	n.Concerns = maps.Clone(n.Concerns)
	return n, ok
}

// NodeConcern returns one node without its Concerns map (nil) and one
// reconciler's concern on it: what a node pass needs, without copying
// every reconciler's concerns for every node and pass.
func (s *Store) NodeConcern(addr, reconciler string) (Node, Concern, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.nodes[addr]
	c := n.Concerns[reconciler]
	c.Changes = slices.Clone(c.Changes)
	n.Concerns = nil
	return n, c, ok
}

// SetFleet makes the known fleet exactly nodes (discovery owns membership):
// new nodes are added, vanished ones removed, known ones keep their concerns.
// It returns the addresses removed so their metric series can be deleted.
func (s *Store) SetFleet(nodes []Node) (removed []string) {
	s.mu.Lock()
	keep := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		keep[n.Address] = true
		old, ok := s.nodes[n.Address]
		if ok {
			old.Hostname, old.Source = n.Hostname, n.Source
			s.nodes[n.Address] = old
			continue
		}
		if n.Concerns == nil {
			n.Concerns = map[string]Concern{}
		}
		s.nodes[n.Address] = n
		s.touch(n.Address)
	}
	for addr := range s.nodes {
		if !keep[addr] {
			delete(s.nodes, addr)
			removed = append(removed, addr)
			s.touch(addr)
		}
	}
	s.mu.Unlock()
	slices.Sort(removed)
	s.notify(TopicNodes)
	return removed
}

// SetContact records whether a node answered, and the error if not.
func (s *Store) SetContact(addr string, reachable bool, at time.Time, errText string) {
	s.mu.Lock()
	n, ok := s.nodes[addr]
	if !ok {
		s.mu.Unlock()
		return // node left the fleet meanwhile: do not resurrect it
	}
	if n.Reachable != reachable || (n.LastError == "") != (errText == "") {
		s.touch(addr)
	}
	n.Reachable, n.LastError = reachable, errText
	if reachable {
		n.LastContact = at
	}
	s.nodes[addr] = n
	s.mu.Unlock()
}

// SetConcern records one reconciler's view of one node.
func (s *Store) SetConcern(addr, reconciler string, c Concern) {
	s.mu.Lock()
	n, ok := s.nodes[addr]
	if !ok {
		s.mu.Unlock()
		return
	}
	prev, had := n.Concerns[reconciler]
	// Readers only ever get clones, so the map can change in place.
	if n.Concerns == nil {
		n.Concerns = map[string]Concern{}
	}
	n.Concerns[reconciler] = c
	s.nodes[addr] = n
	changed := prev.Hash != c.Hash || prev.InSync != c.InSync
	if !had || prev.InSync != c.InSync {
		s.touch(addr)
	}
	s.mu.Unlock()
	if changed {
		s.notify(TopicNodes)
	}
}

// NodesCarry reports whether every reachable-or-not node in the fleet has
// reported Hash == hash for reconciler; missing lists those that have not.
// An empty fleet carries everything.
func (s *Store) NodesCarry(reconciler, hash string) (all bool, missing []string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for addr, n := range s.nodes {
		if n.Concerns[reconciler].Hash != hash {
			missing = append(missing, addr)
		}
	}
	slices.Sort(missing)
	return len(missing) == 0, missing
}

// Apps returns copies of every app, sorted by id.
func (s *Store) Apps() []App {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := slices.Collect(maps.Values(s.apps))
	slices.SortFunc(out, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// App returns one app.
func (s *Store) App(id string) (App, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.apps[id]
	return a, ok
}

// SetApp records an app's observed state.
func (s *Store) SetApp(a App) {
	s.mu.Lock()
	s.apps[a.ID] = a
	s.mu.Unlock()
	s.notify(TopicApp)
}

// RemoveApp forgets an app the spec no longer names.
func (s *Store) RemoveApp(id string) {
	s.mu.Lock()
	delete(s.apps, id)
	s.mu.Unlock()
}

// Probe returns the last registry probe.
func (s *Store) Probe() Probe {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.probe
}

// SetProbe records a registry probe.
func (s *Store) SetProbe(p Probe) {
	s.mu.Lock()
	s.probe = p
	s.mu.Unlock()
}

// Reconcilers returns the manager's records, sorted by name.
func (s *Store) Reconcilers() []ReconcilerStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]ReconcilerStatus, 0, len(s.reconcilers))
	for _, r := range s.reconcilers {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ReconcilerStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// UpdateReconciler applies fn to a reconciler's record, under the
// store's lock: fn must not keep the pointer it is given.
func (s *Store) UpdateReconciler(name string, fn func(*ReconcilerStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// fn gets the stored record itself: a copy handed to a function
	// value escapes, and this runs after every reconcile of every node.
	r := s.reconcilers[name]
	if r == nil {
		r = &ReconcilerStatus{Name: name}
		s.reconcilers[name] = r
	}
	fn(r)
	r.Name = name
}

// Hash is the hex sha256 used for every content comparison in the operator.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
