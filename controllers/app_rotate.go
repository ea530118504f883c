package controllers

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/marathon"
	pkipkg "github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/state"
)

// rotate probes the registry and restarts it when the certificate
// reconciler has issued a certificate the registry does not serve yet and
// placement reports it on the registry's agents. It runs only on a pass
// that found the app's definition in sync and no deployment running.
//
// The probe decides, not memory: a registry already serving the current
// certificate (after an operator restart, or an app created after the
// certificate was placed) is adopted without a restart. A restart needs
// evidence that one helps: the registry seen serving another certificate,
// or Marathon reporting its tasks healthy while the probe still fails. A
// probe that cannot connect to a task Marathon does not call healthy yet
// (right after the app was created) waits.
func (r *AppReconciler) rotate(ctx context.Context, p *pass, cur *marathon.AppStatus, a servedApp) (manager.Result, error) {
	healthErr := r.healthError(p)
	pki := r.Store.PKI()
	if !pki.Ready || len(pki.ServerChain) == 0 {
		return r.record(p, healthErr) // nothing issued yet: the certificate reconciler will notify
	}
	if p.desired.Instances == 0 {
		p.st.RestartedForGeneration = max(p.st.RestartedForGeneration, pki.Generation)
		return r.record(p, healthErr)
	}
	var endpoints []string
	for _, t := range cur.Tasks {
		if ep := t.Endpoint(); ep != "" && t.State == "TASK_RUNNING" {
			endpoints = append(endpoints, ep)
		}
	}
	if len(endpoints) == 0 {
		return r.record(p, healthErr) // tasks are starting: the next pass probes
	}
	start := r.Clock.Now()
	// The mirror is probed the same way, against its own address: TLS and
	// its own /v2/, which a pull-through cache answers without asking its
	// upstream, so an upstream outage never restarts it.
	pr := probeRegistry(ctx, r.opts.Dial, a.endpoint, pki, endpoints, r.opts.ProbeTimeout)
	pr.Duration, pr.Checked = r.Clock.Since(start), start
	if a.kind == servedRegistry {
		// The probe view and gauges are the registry's.
		r.Store.SetProbe(pr.Probe)
		r.Metrics.ProbeDuration.Set(pr.Duration.Seconds())
		r.Metrics.ProbeSuccess.Set(b2f(pr.Success))
	}
	p.st.ServedSerial = pr.Serial
	if pr.Current {
		p.st.RestartedForGeneration = max(p.st.RestartedForGeneration, pki.Generation)
	}
	if pki.Generation > p.st.RestartedForGeneration {
		if !pr.Stale && !tasksHealthy(cur) {
			// Not seen serving anything else, and Marathon does not call
			// it healthy: a registry still starting (right after the app
			// was created, or a task relaunched), not one to restart.
			p.st.Diff = append(p.st.Diff, fmt.Sprintf("restart for generation %d waits: the registry is not seen "+
				"serving another certificate, and Marathon does not report its tasks healthy yet (probe: %s)",
				pki.Generation, orUnknown(pr.Error)))
			return r.recordRequeue(p, nil)
		}
		return r.restart(ctx, p, pki, pr)
	}
	if !pr.Success {
		return r.record(p, fmt.Errorf("registry probe of app %s: %s", p.key, pr.Error))
	}
	return r.record(p, healthErr)
}

// tasksHealthy reports whether Marathon calls every running task healthy:
// each has health check results and all of them are alive. An app without
// health checks has nothing more to say than that its tasks run.
func tasksHealthy(cur *marathon.AppStatus) bool {
	n := 0
	for _, t := range cur.Tasks {
		if t.State != "TASK_RUNNING" {
			continue
		}
		n++
		if cur.HealthChecks == 0 {
			continue
		}
		if len(t.HealthCheckResults) == 0 {
			return false
		}
		for _, h := range t.HealthCheckResults {
			if !h.Alive {
				return false
			}
		}
	}
	return n > 0
}

func (r *AppReconciler) restart(ctx context.Context, p *pass, pki state.PKI, pr probeResult) (manager.Result, error) {
	want, _ := firstCert(pki.ServerChain)
	line := fmt.Sprintf("restart: serving certificate serial %s -> %s (generation %d)",
		orUnknown(pr.Serial), pkipkg.Serial(want), pki.Generation)
	if ok, missing := r.placed(p, pki); !ok {
		p.st.Diff = append(p.st.Diff, line+", waiting for placement on "+strings.Join(missing, ","))
		return r.recordRequeue(p, nil)
	}
	p.st.Diff = append(p.st.Diff, line)
	dep, err := p.client.RestartApp(ctx, p.key, false)
	if err != nil {
		return r.writeFailed(p, err)
	}
	p.log.Info("restarting the registry to serve the new certificate", "generation", pki.Generation,
		"deployment", dep, "servedSerial", pr.Serial)
	r.started(p, dep, "restart", pki.Generation)
	return r.recordRequeue(p, nil)
}

// placed reports whether placement has put the current chain on the
// agents running the app, or on every agent when the app's agents cannot
// be matched to known nodes. It reads placement's CertificatePlacement view.
func (r *AppReconciler) placed(p *pass, pki state.PKI) (bool, []string) {
	if !p.spec.PlacementEnabled() {
		return true, nil // nothing places certificates: the restart is all there is
	}
	placement := r.Store.CertificatePlacement()
	everywhere := func() (bool, []string) {
		m := placement.Missing(pki.ServerHash)
		return len(m) == 0, m
	}
	var missing []string
	for _, h := range p.st.Hosts {
		n, ok := findNode(placement.Nodes, h)
		if !ok {
			return everywhere()
		}
		if n.Hash != pki.ServerHash {
			missing = append(missing, n.Address)
		}
	}
	if len(p.st.Hosts) == 0 {
		return everywhere()
	}
	return len(missing) == 0, missing
}

func findNode(nodes []state.PlacedNode, host string) (state.PlacedNode, bool) {
	for _, n := range nodes {
		h, _, err := net.SplitHostPort(n.Address)
		if err != nil {
			h = n.Address
		}
		if n.Address == host || n.Hostname == host || h == host {
			return n, true
		}
	}
	return state.PlacedNode{}, false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}
