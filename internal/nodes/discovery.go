package nodes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Sources of an agent.
const (
	SourceMesos  = "mesos"
	SourceStatic = "static"
)

// Agent is one node to keep converged.
type Agent struct {
	// Address is what the operator dials and the node's key everywhere:
	// the agent's IP for Mesos agents, the entry itself for static ones.
	Address  string
	Hostname string
	Source   string
}

// IP returns the host part of Address.
func (a Agent) IP() string {
	if h, _, err := net.SplitHostPort(a.Address); err == nil {
		return h
	}
	return a.Address
}

// Discoverer lists agents from a Mesos master.
type Discoverer struct {
	HTTP    *http.Client
	Timeout time.Duration
}

// mesosSlaves is the part of GET /master/slaves the operator reads.
type mesosSlaves struct {
	Slaves []struct {
		ID       string `json:"id"`
		PID      string `json:"pid"`
		Hostname string `json:"hostname"`
		Active   bool   `json:"active"`
	} `json:"slaves"`
}

// Mesos returns the active agents the master at baseURL knows, as the master
// describes them: pass them through CheckedAgents before using them. A master that
// is not the leader answers 307 with the leader's location, which the HTTP
// client follows (Mesos sends a scheme-relative "//host:port/..." URL).
func (d *Discoverer) Mesos(ctx context.Context, baseURL string) ([]Agent, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	u := strings.TrimRight(baseURL, "/") + "/master/slaves"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("mesos agents: bad nodes.mesos.url %q: %w", baseURL, err)
	}
	req.Header.Set("Accept", "application/json")
	hc := d.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mesos agents: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("mesos agents: read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mesos agents: GET %s: %s: %s", u, resp.Status, snippet(body))
	}
	var ms mesosSlaves
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("mesos agents: decode %s: %w", u, err)
	}
	var out []Agent
	for _, s := range ms.Slaves {
		if !s.Active {
			continue
		}
		addr, ok := pidHost(s.PID)
		if !ok {
			addr = s.PID // not a libprocess PID: CheckedAgents refuses it
		}
		if addr == "" {
			addr = s.Hostname
		}
		if addr == "" {
			continue
		}
		a := Agent{Address: addr, Hostname: s.Hostname, Source: SourceMesos}
		if a.Hostname == "" {
			a.Hostname = addr
		}
		out = append(out, a)
	}
	return out, nil
}

// pidHost extracts the IP from a libprocess PID ("slave(1)@10.0.0.5:5051").
// An empty pid is fine (the hostname is used); one that does not parse is not.
func pidHost(pid string) (string, bool) {
	if pid == "" {
		return "", true
	}
	_, hp, ok := strings.Cut(pid, "@")
	if !ok {
		return "", false
	}
	h, _, err := net.SplitHostPort(hp)
	if err != nil {
		return "", false
	}
	return h, true
}

// Static turns nodes.static entries ("host" or "host:port") into agents.
func Static(entries []string) []Agent {
	out := make([]Agent, 0, len(entries))
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		host := e
		if h, _, err := net.SplitHostPort(e); err == nil {
			host = h
		}
		out = append(out, Agent{Address: e, Hostname: host, Source: SourceStatic})
	}
	return out
}

// Merge combines agent lists; the first occurrence of an address wins, so a
// static entry never duplicates an agent Mesos already reports.
func Merge(lists ...[]Agent) []Agent {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	if n == 0 {
		return nil
	}
	// Sorted, then the first of each address kept (a stable sort leaves
	// equal addresses in list order): no set of every address, each round.
	out := make([]Agent, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b Agent) int { return strings.Compare(a.Address, b.Address) })
	return slices.CompactFunc(out, func(a, b Agent) bool { return a.Address == b.Address })
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
