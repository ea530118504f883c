//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/status"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(8, "report-mode", reportMode) }

// reportMode: with reconcile.mode report the operator finds drift and
// says so (out_of_sync series, /api/status with what it would change) but
// changes nothing for at least two intervals; back in enforce it repairs
// everything.
func reportMode(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	setMode(t, sb, v1alpha1.ModeReport)
	bundle := readState(t, sb, "trust-bundle.crt")
	a1, a2 := sb.Agent(1), sb.Agent(2)

	// Drift: trust gone on agent 1, conntrack off on agent 2, the registry
	// scaled to 0 through the Marathon API.
	if err := a1.Remove(ctx, sb.CAPath()); err != nil {
		t.Fatal(err)
	}
	if err := a2.SetSysctl(ctx, sandbox.ConntrackKey, "0"); err != nil {
		t.Fatal(err)
	}
	code, body, err := sb.Marathon(ctx, http.MethodPut, "/v2/apps"+sandbox.AppID+"?force=true", map[string]any{"instances": 0})
	if err != nil || code != http.StatusOK {
		t.Fatalf("scale %s to 0: %d %v %s", sandbox.AppID, code, err, body)
	}
	writes := len(sb.Sim.Writes()) // ours included
	before := metrics(t, sb)
	corrections := before.Sum(driftMetric)
	injected := time.Now()

	reported := check(func(ctx context.Context) error {
		m, err := sb.Metrics(ctx)
		if err != nil {
			return err
		}
		for _, s := range []struct{ rec, target string }{
			{"trust", a1.Address}, {"conntrack", a2.Address}, {"app", sandbox.AppID},
		} {
			if v, ok := m.Get("registry_operator_out_of_sync", "reconciler", s.rec, "target", s.target); !ok || v != 1 {
				return fmt.Errorf("out_of_sync{reconciler=%q,target=%q} is not 1:\n%s", s.rec, s.target, m.Describe("registry_operator_out_of_sync"))
			}
		}
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		if st.Config.Mode != v1alpha1.ModeReport || st.InSync {
			return fmt.Errorf("/api/status mode %q inSync %v", st.Config.Mode, st.InSync)
		}
		if err := wouldChange(st, a1.Address, "trust", sb.CAPath()); err != nil {
			return err
		}
		if err := wouldChange(st, a2.Address, "conntrack", "0 -> 1"); err != nil {
			return err
		}
		for _, a := range st.Apps {
			if a.ID == sandbox.AppID {
				if a.InSync || !strings.Contains(strings.Join(a.Diff, "\n"), "instances") {
					return fmt.Errorf("/api/status app %s inSync=%v diff=%q, want a difference in instances", a.ID, a.InSync, a.Diff)
				}
				return nil
			}
		}
		return fmt.Errorf("/api/status has no app %s: %s", sandbox.AppID, describeAppsOf(st))
	})
	sb.Eventually(t, within(sb), "the drift is reported in /metrics and /api/status", reported)

	// Left alone for two more full passes and at least two intervals.
	waitPasses(t, sb, 2, "trust", "conntrack", "app")
	if d := 2*sb.Interval() - time.Since(injected); d > 0 {
		time.Sleep(d)
	}
	if _, err := a1.ReadFile(ctx, sb.CAPath()); err == nil {
		sb.Fail(t, "report mode leaves "+sb.CAPath()+" missing on "+a1.Name, "it was written")
	}
	if v, err := a2.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "0" {
		sb.Fail(t, "report mode leaves "+sandbox.ConntrackKey+"=0 on "+a2.Name, fmt.Sprintf("%q err=%v", v, err))
	}
	if a := appDef(t, sb); a.Instances != 0 {
		sb.Fail(t, "report mode leaves the app at 0 instances", fmt.Sprint(a.Instances))
	}
	if w := sb.Sim.Writes(); len(w) != writes {
		sb.Fail(t, "no Marathon write in report mode", describeWrites(w[writes:]))
	}
	if v := metrics(t, sb).Sum(driftMetric); v != corrections {
		sb.Fail(t, fmt.Sprintf("%s unchanged in report mode (%g)", driftMetric, corrections), fmt.Sprint(v))
	}
	sb.Eventually(t, 10*time.Second, "the drift is still reported", reported)

	// Enforce again: everything repaired.
	setMode(t, sb, v1alpha1.ModeEnforce)
	sb.Eventually(t, within(sb), "enforce repairs the drift: ca.crt on "+a1.Name+", conntrack on "+a2.Name+", 1 instance",
		check(func(ctx context.Context) error {
			if b, err := a1.ReadFile(ctx, sb.CAPath()); err != nil || !bytes.Equal(b, bundle) {
				return fmt.Errorf("%s: %s err=%v", a1.Name, sb.CAPath(), err)
			}
			if v, err := a2.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "1" {
				return fmt.Errorf("%s: %s=%q err=%v", a2.Name, sandbox.ConntrackKey, v, err)
			}
			if a := appDef(t, sb); a.Instances != 1 {
				return fmt.Errorf("app instances %d", a.Instances)
			}
			return nil
		}))
	ready(t, sb)
	driftRisen(t, sb, before, map[string]float64{"": 3})
	pushPull(t, sb, 2, 1, "e2e/report:1")
}

// setMode sets reconcile.mode and waits until it is in force.
func setMode(t *testing.T, sb *sandbox.Sandbox, mode string) {
	t.Helper()
	if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.Reconcile.Mode = mode }); err != nil {
		t.Fatal(err)
	}
	sb.Eventually(t, 30*time.Second, "reconcile.mode "+mode+" in force", check(func(ctx context.Context) error {
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		if st.Config.Mode != mode {
			return fmt.Errorf("mode %q (last reload error %q)", st.Config.Mode, st.Config.LastReloadError)
		}
		return nil
	}))
}

// wouldChange checks that /api/status shows node addr out of sync for
// reconciler rec, with a change line containing want.
func wouldChange(st status.Status, addr, rec, want string) error {
	n, ok := findNode(st, addr)
	if !ok {
		return fmt.Errorf("/api/status has no node %s: %v", addr, nodeStates(st))
	}
	c := n.Concerns[rec]
	if n.State != status.NodeOutOfSync || c.InSync || !strings.Contains(strings.Join(c.Changes, "\n"), want) {
		return fmt.Errorf("/api/status node %s state %s, %s inSync=%v changes=%q; want out of sync with a change naming %q",
			addr, n.State, rec, c.InSync, c.Changes, want)
	}
	return nil
}

func describeAppsOf(st status.Status) string {
	var out []string
	for _, a := range st.Apps {
		out = append(out, fmt.Sprintf("%s inSync=%v diff=%q", a.ID, a.InSync, a.Diff))
	}
	return strings.Join(out, "; ")
}
