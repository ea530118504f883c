package metrics

import (
	"github.com/registry-operator/registry-operator/internal/reconciler"

	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestPromtoolCheckMetrics lints /metrics as a live operator serves it with
// `promtool check metrics` (Debian's prometheus package): names, units,
// HELP text and types must draw no complaint.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); CI installs it")
	}
	m := New(BuildInfo{Version: "0.1.0", Revision: "abc123"})
	populate(m)
	srv := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exposition, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The populated series are there: the lint ran on a realistic page.
	for _, want := range []string{
		`registry_operator_out_of_sync{reconciler="trust",target="198.18.0.12"} 1`,
		`registry_operator_app_instances{app="/registry",state="healthy"} 1`,
		`registry_operator_nodes{state="unreachable"} 1`,
		`registry_operator_pull_password_generation 3`,
		`registry_operator_pull_credentials_overdue 0`,
		`registry_operator_reconcile_total{reconciler="credentials",result="error"} 0`,
		`registry_operator_build_info{goversion=`,
		`registry_operator_reconcile_duration_seconds_bucket{reconciler="trust",le="0.05"}`,
	} {
		if !bytes.Contains(exposition, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// populate sets series the way the running loops do after a few passes.
func populate(m *Metrics) {
	for i, r := range reconciler.All() {
		m.ReconcileTotal.WithLabelValues(r, ResultSuccess).Add(float64(10 + i))
		m.ReconcileDuration.WithLabelValues(r).Observe(0.02 * float64(i+1))
		m.LastSuccess.WithLabelValues(r).Set(1.7e9)
	}
	m.ReconcileTotal.WithLabelValues(reconciler.Trust, ResultError).Add(3)
	m.ReconcileTotal.WithLabelValues(reconciler.App, ResultRequeue).Inc()
	for _, n := range []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"} {
		m.SetOutOfSync(reconciler.Trust, n, n == "198.18.0.12")
		m.SetOutOfSync(reconciler.Conntrack, n, false)
		m.HostKeyMismatch.WithLabelValues(n)
	}
	m.SetOutOfSync(reconciler.App, "/registry", false)
	m.DriftCorrections.WithLabelValues(reconciler.Conntrack).Add(2)
	m.Nodes.WithLabelValues(NodeInSync).Set(2)
	m.Nodes.WithLabelValues(NodeUnreachable).Set(1)
	m.CertExpiration.WithLabelValues("server").Set(1.78e9)
	m.CertRenewal.WithLabelValues("server").Set(1.775e9)
	m.CertReady.WithLabelValues("server").Set(1)
	m.CertReady.WithLabelValues("ca").Set(1)
	m.InitApp("/registry")
	m.AppInstances.WithLabelValues("/registry", "desired").Set(1)
	m.AppInstances.WithLabelValues("/registry", "running").Set(1)
	m.AppInstances.WithLabelValues("/registry", "healthy").Set(1)
	m.PullPasswordGeneration.Set(3)
	m.PullPasswordNextRotation.Set(1.78e9)
	m.PullCredentialsLagging.Set(1)
	m.PullCredentialsOverdue.Set(0)
	m.SetOutOfSync(reconciler.Credentials, "198.18.0.11", false)
	m.ProbeSuccess.Set(1)
	m.ProbeDuration.Set(0.023)
	m.ConfigReloadSuccessful.Set(1)
	m.ConfigReloadTimestamp.Set(1.7e9)
	m.Leader.Set(1)
	m.SSHSessions.Add(5)
	m.MarathonRequests.WithLabelValues("GET").Add(7)
}
