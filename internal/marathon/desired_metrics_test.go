package marathon

import (
	"testing"

	"github.com/registry-operator/registry-operator/internal/registryconfig"
)

// The registry's debug listener is a second port: no VIP, Marathon-LB
// told to skip it, labels that tell a scraper where the metrics are.
func TestRegistryMetricsPort(t *testing.T) {
	r := sampleSpec(t)
	r.Spec.App.MetricsPort = 5001
	app, err := BuildRegistryApp("registry", &r.Spec, RegistryInputs{ConfigHash: testConfigHash})
	if err != nil {
		t.Fatal(err)
	}
	pms := app.Container.PortMappings
	if len(pms) != 2 {
		t.Fatalf("want the registry port and the metrics port, got %+v", pms)
	}
	m := pms[1]
	if m.ContainerPort != 5001 || m.HostPort != 0 || m.ServicePort != 0 || m.Name != MetricsPortName {
		t.Errorf("metrics port mapping %+v", m)
	}
	if _, ok := m.Labels[VIPLabel]; ok {
		t.Error("the metrics port must never be on the VIP")
	}
	if m.Labels[MetricsScrapeLabel] != "true" || m.Labels[MetricsPathLabel] != registryconfig.MetricsPath {
		t.Errorf("scrape labels %v", m.Labels)
	}
	if app.Labels["HAPROXY_1_ENABLED"] != "false" {
		t.Errorf("Marathon-LB must leave port 1 out, labels %v", app.Labels)
	}
	if pms[0].Labels[VIPLabel] == "" || app.HealthChecks[0].PortIndex != 0 {
		t.Error("the registry port keeps the VIP and the health check")
	}
	r.Spec.App.MetricsPort = 0
	app, err = BuildRegistryApp("registry", &r.Spec, RegistryInputs{ConfigHash: testConfigHash})
	if err != nil || len(app.Container.PortMappings) != 1 || app.Labels["HAPROXY_1_ENABLED"] != "" {
		t.Errorf("without metricsPort: one port, no Marathon-LB label: %v %+v", err, app)
	}
}
