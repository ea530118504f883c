//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/status"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(3, "growth", growth) }

// growth: an agent that joins the cluster (appears in /master/slaves) is
// in sync within one interval; one that leaves stops being reported: not
// in /api/status, no per-target metric series.
func growth(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bundle := readState(t, sb, "trust-bundle.crt")

	added, err := sb.AddAgents(ctx, 1)
	if err != nil {
		t.Fatalf("add an agent: %v", err)
	}
	h := added[0]
	joined := time.Now()
	sb.Eventually(t, within(sb), h.Name+" ("+h.Address+") trusts the CA, has conntrack set and is in sync in /api/status",
		check(func(ctx context.Context) error {
			b, err := h.ReadFile(ctx, sb.CAPath())
			if err != nil || !bytes.Equal(b, bundle) {
				return fmt.Errorf("ca.crt: err=%v, %d bytes", err, len(b))
			}
			if v, err := h.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "1" {
				return fmt.Errorf("%s=%q err=%v", sandbox.ConntrackKey, v, err)
			}
			st, err := sb.Status(ctx)
			if err != nil {
				return err
			}
			n, ok := findNode(st, h.Address)
			if !ok || n.State != status.NodeInSync {
				return fmt.Errorf("/api/status: node %s present=%v state=%q; nodes %v", h.Address, ok, n.State, nodeStates(st))
			}
			return nil
		}))
	t.Logf("%s in sync %s after it joined", h.Name, time.Since(joined).Round(100*time.Millisecond))
	sb.Eventually(t, within(sb), fmt.Sprintf("registry_operator_nodes{state=\"in_sync\"} = %d", len(sb.Agents())),
		metricIs(sb, float64(len(sb.Agents())), "registry_operator_nodes", "state", "in_sync"))
	pushPull(t, sb, h.Index, 1, "e2e/growth:1")

	// The agent leaves: Mesos forgets it and the host is gone.
	if !metrics(t, sb).Has("registry_operator_out_of_sync", "target", h.Address) {
		sb.Fail(t, "out_of_sync series for "+h.Address+" while it is an agent", metrics(t, sb).Describe("registry_operator_out_of_sync"))
	}
	if err := sb.RemoveAgent(ctx, h.Index); err != nil {
		t.Fatalf("remove %s: %v", h.Name, err)
	}
	sb.Eventually(t, within(sb), h.Address+" no longer in /api/status nor in any metric series", check(func(ctx context.Context) error {
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		if _, ok := findNode(st, h.Address); ok {
			return fmt.Errorf("/api/status still lists %s: nodes %v", h.Address, nodeStates(st))
		}
		m, err := sb.Metrics(ctx)
		if err != nil {
			return err
		}
		for name := range m {
			if m.Has(name, "target", h.Address) {
				return fmt.Errorf("series left:\n%s", m.Describe(name))
			}
		}
		return nil
	}))
	ready(t, sb)
	// The gauge is recomputed when a pass ends, a moment after the status
	// page shows its node.
	sb.Eventually(t, 10*time.Second, fmt.Sprintf("registry_operator_nodes{state=\"in_sync\"} = %d after the agent left", len(sb.Agents())),
		metricIs(sb, float64(len(sb.Agents())), "registry_operator_nodes", "state", "in_sync"))
}

func findNode(st status.Status, addr string) (status.Node, bool) {
	i := slices.IndexFunc(st.Nodes, func(n status.Node) bool { return n.Address == addr })
	if i < 0 {
		return status.Node{}, false
	}
	return st.Nodes[i], true
}

func nodeStates(st status.Status) []string {
	var out []string
	for _, n := range st.Nodes {
		out = append(out, n.Address+"="+n.State)
	}
	return out
}
