package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// Agent returns fleet host i (its index since creation), or nil when
// there is none or it was removed.
func (s *Sandbox) Agent(i int) *testfleet.Host { return s.Fleet.Host(i) }

// RegistryAgent is the agent the registry app is pinned to (agent 0).
func (s *Sandbox) RegistryAgent() *testfleet.Host { return s.Fleet.Host(0) }

// Agents returns the agents listed in /master/slaves, in index order.
func (s *Sandbox) Agents() []*testfleet.Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*testfleet.Host
	for _, h := range s.Fleet.Hosts() {
		if s.listed[h.Index] {
			out = append(out, h)
		}
	}
	return out
}

// ListedAddresses returns the listed agents' addresses, sorted.
func (s *Sandbox) ListedAddresses() []string {
	var out []string
	for _, h := range s.Agents() {
		out = append(out, h.Address)
	}
	slices.Sort(out)
	return out
}

// Exec runs a command inside agent i's namespaces and returns its output.
func (s *Sandbox) Exec(ctx context.Context, i int, name string, args ...string) ([]byte, error) {
	h := s.Agent(i)
	if h == nil {
		return nil, fmt.Errorf("sandbox: no agent %d", i)
	}
	return h.Exec(ctx, name, args...)
}

// AddAgents starts n new agents and lists them in /master/slaves.
func (s *Sandbox) AddAgents(ctx context.Context, n int) ([]*testfleet.Host, error) {
	hs, err := s.Fleet.AddHosts(ctx, n)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for _, h := range hs {
		s.listed[h.Index] = true
	}
	s.mu.Unlock()
	s.publishAgents()
	return hs, nil
}

// SetListed puts agent i into /master/slaves or takes it out (the host
// keeps running: Mesos forgot it, or it is not an agent yet).
func (s *Sandbox) SetListed(i int, listed bool) error {
	if s.Agent(i) == nil {
		return fmt.Errorf("sandbox: no agent %d", i)
	}
	s.mu.Lock()
	s.listed[i] = listed
	s.mu.Unlock()
	s.publishAgents()
	return nil
}

// RemoveAgent takes agent i out of /master/slaves and destroys its host.
func (s *Sandbox) RemoveAgent(ctx context.Context, i int) error {
	if i == 0 {
		return errors.New("sandbox: agent 0 runs the registry; remove another one")
	}
	if err := s.SetListed(i, false); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.listed, i)
	s.mu.Unlock()
	return s.Fleet.RemoveHost(ctx, i)
}

// CAPath is where the trust reconciler puts the CA for docker on an agent:
// /etc/docker/certs.d/<registry address>/ca.crt.
func (s *Sandbox) CAPath() string {
	return path.Join("/etc/docker/certs.d", s.RegistryAddress, "ca.crt")
}

// CertsDir is app.certsHostPath: where tls.crt and tls.key are placed on
// the registry's agent.
func (s *Sandbox) CertsDir() string { return "/etc/privateregistry/certs" }
