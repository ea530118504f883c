//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/status"
	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

func init() { register(9, "faults", faults) }

// faults: one agent's sshd is down, another presents a host key that
// known_hosts does not hold, and the Marathon API answers 503. The rest of
// the cluster still converges (drift on agent 0 repaired, a new agent
// brought in sync, images still move), the operator keeps running (same
// pid), and the metrics alerts use say what is wrong. Once the faults are
// lifted (sshd started, known_hosts updated for the new key, Marathon
// answering), everything converges.
func faults(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pid := sb.OperatorPID()
	bundle := readState(t, sb, "trust-bundle.crt")
	a0, down, rekeyed := sb.Agent(0), sb.Agent(1), sb.Agent(2)
	m0 := metrics(t, sb)
	appErrors0, _ := m0.Get("registry_operator_reconcile_total", "reconciler", "app", "result", "error")
	mismatch0, _ := m0.Get("registry_operator_ssh_host_key_mismatch_total", "target", rekeyed.Address)

	lifted := false
	lift := func() {
		if lifted {
			return
		}
		lifted = true
		sb.Sim.SetFault(marathonsim.Fault{})
		if err := down.StartSSHD(ctx); err != nil {
			t.Errorf("start sshd on %s again: %v", down.Name, err)
		}
		if _, err := rekeyed.ReplaceHostKey(ctx, true); err != nil {
			t.Errorf("record %s's host key in known_hosts: %v", rekeyed.Name, err)
		}
	}
	defer lift()
	if err := down.StopSSHD(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rekeyed.ReplaceHostKey(ctx, false); err != nil {
		t.Fatal(err)
	}
	sb.Sim.SetFault(marathonsim.Fault{Status: http.StatusServiceUnavailable, Paths: "/v2/"})
	// What the rest of the cluster needs meanwhile: a repair and a newcomer.
	if err := a0.SetSysctl(ctx, sandbox.ConntrackKey, "0"); err != nil {
		t.Fatal(err)
	}
	added, err := sb.AddAgents(ctx, 1)
	if err != nil {
		t.Fatalf("add an agent: %v", err)
	}
	joined := added[0]
	faulted := time.Now()

	sb.Eventually(t, within(sb), "despite the faults, "+a0.Name+" repaired and "+joined.Name+" in sync", check(func(ctx context.Context) error {
		if v, err := a0.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "1" {
			return fmt.Errorf("%s: %s=%q err=%v", a0.Name, sandbox.ConntrackKey, v, err)
		}
		if b, err := joined.ReadFile(ctx, sb.CAPath()); err != nil || !bytes.Equal(b, bundle) {
			return fmt.Errorf("%s: ca.crt err=%v", joined.Name, err)
		}
		if v, err := joined.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "1" {
			return fmt.Errorf("%s: %s=%q err=%v", joined.Name, sandbox.ConntrackKey, v, err)
		}
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		for _, h := range []string{a0.Address, joined.Address} {
			if n, ok := findNode(st, h); !ok || n.State != status.NodeInSync {
				return fmt.Errorf("/api/status: %s not in sync: %v", h, nodeStates(st))
			}
		}
		return nil
	}))
	sb.Eventually(t, within(sb), "the metrics and /api/status name the faults: 2 nodes unreachable, a host key mismatch on "+
		rekeyed.Address+", app reconciles failing", check(func(ctx context.Context) error {
		m, err := sb.Metrics(ctx)
		if err != nil {
			return err
		}
		if v, _ := m.Get("registry_operator_nodes", "state", "unreachable"); v != 2 {
			return fmt.Errorf("%s", m.Describe("registry_operator_nodes"))
		}
		if v, _ := m.Get("registry_operator_ssh_host_key_mismatch_total", "target", rekeyed.Address); v <= mismatch0 {
			return fmt.Errorf("%s", m.Describe("registry_operator_ssh_host_key_mismatch_total"))
		}
		if v, _ := m.Get("registry_operator_reconcile_total", "reconciler", "app", "result", "error"); v <= appErrors0 {
			return fmt.Errorf("no new app errors: %s", m.Describe("registry_operator_reconcile_total"))
		}
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		for _, h := range []string{down.Address, rekeyed.Address} {
			if n, ok := findNode(st, h); !ok || n.State != status.NodeUnreachable || n.LastError == "" {
				return fmt.Errorf("/api/status: %s not unreachable with an error: %v", h, nodeStates(st))
			}
		}
		if n, _ := findNode(st, rekeyed.Address); !strings.Contains(strings.ToLower(n.LastError), "host key") {
			return fmt.Errorf("/api/status: %s's error does not say host key: %q", rekeyed.Address, n.LastError)
		}
		if !slices.ContainsFunc(st.OutOfSync, func(it status.Item) bool { return it.Kind == "reconciler" && it.Name == "app" }) {
			return fmt.Errorf("/api/status does not list the app reconciler's failure: %v", st.OutOfSync)
		}
		return nil
	}))
	// The registry itself is not affected: images still move.
	pushPull(t, sb, joined.Index, 0, "e2e/faults:1")
	// Faults held for at least two intervals, with the app retrying.
	waitPasses(t, sb, 2, "app")
	if d := 2*sb.Interval() - time.Since(faulted); d > 0 {
		time.Sleep(d)
	}
	if got := sb.OperatorPID(); got != pid {
		sb.Fail(t, fmt.Sprintf("the operator keeps running through the faults (pid %d)", pid), fmt.Sprintf("pid %d", got))
	}

	lift()
	liftedAt := time.Now()
	// Marathon answers again: the operator uses it again (no host left
	// marked down), as a drift shows.
	drift0 := metrics(t, sb)
	sb.Eventually(t, 10*time.Second, "Marathon answers once the fault is lifted", check(func(ctx context.Context) error {
		code, body, err := sb.Marathon(ctx, http.MethodPut, "/v2/apps"+sandbox.AppID+"?force=true", map[string]any{"instances": 0})
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("scale to 0: %d %v %s", code, err, body)
		}
		return nil
	}))
	sb.Eventually(t, within(sb), "the app scaled to 0 after the outage is back to 1 instance", check(func(context.Context) error {
		if a := appDef(t, sb); a.Instances != 1 {
			return fmt.Errorf("instances %d", a.Instances)
		}
		return nil
	}))
	ready(t, sb)
	driftRisen(t, sb, drift0, map[string]float64{"app": 1})
	t.Logf("converged %s after the faults were lifted", time.Since(liftedAt).Round(100*time.Millisecond))
	// The nodes gauge is recomputed when a pass ends, a moment after the
	// status page shows its node.
	sb.Eventually(t, 10*time.Second, "no unreachable node after the faults",
		metricIs(sb, 0, "registry_operator_nodes", "state", "unreachable"))
	if got := sb.OperatorPID(); got != pid {
		sb.Fail(t, fmt.Sprintf("the operator kept running (pid %d)", pid), fmt.Sprintf("pid %d", got))
	}
	for _, h := range []*testfleet.Host{down, rekeyed} {
		if b, err := h.ReadFile(ctx, sb.CAPath()); err != nil || !bytes.Equal(b, bundle) {
			sb.Fail(t, h.Name+" trusts the CA after the faults", fmt.Sprintf("err=%v", err))
		}
	}
	pushPull(t, sb, down.Index, rekeyed.Index, "e2e/faults:2")

	if err := sb.RemoveAgent(ctx, joined.Index); err != nil {
		t.Fatalf("remove %s: %v", joined.Name, err)
	}
	ready(t, sb)
}
