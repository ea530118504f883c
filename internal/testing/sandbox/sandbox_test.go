package sandbox

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP registry_operator_drift_corrections_total Repairs.
# TYPE registry_operator_drift_corrections_total counter
registry_operator_drift_corrections_total{reconciler="app"} 2
registry_operator_drift_corrections_total{reconciler="trust"} 1
registry_operator_out_of_sync{reconciler="trust",target="198.18.0.3"} 0
registry_operator_out_of_sync{reconciler="conntrack",target="198.18.0.3"} 1
registry_operator_registry_probe_success 1
weird{l="a \"quoted\", comma\\ and } brace"} 3.5e+00 1700000000000
`
	m, err := ParseMetrics([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("registry_operator_drift_corrections_total", "reconciler", "trust"); !ok || v != 1 {
		t.Errorf("trust corrections = %v, %v; want 1, true", v, ok)
	}
	if got := m.Sum("registry_operator_drift_corrections_total"); got != 3 {
		t.Errorf("sum of corrections = %v, want 3", got)
	}
	if _, ok := m.Get("registry_operator_out_of_sync", "target", "198.18.0.3"); ok {
		t.Error("Get with two matching series must report ok=false")
	}
	if !m.Has("registry_operator_out_of_sync", "target", "198.18.0.3") || m.Has("registry_operator_out_of_sync", "target", "198.18.0.9") {
		t.Error("Has does not match labels")
	}
	if v, ok := m.Get("registry_operator_registry_probe_success"); !ok || v != 1 {
		t.Errorf("probe success = %v, %v", v, ok)
	}
	if v, ok := m.Get("weird", "l", `a "quoted", comma\ and } brace`); !ok || v != 3.5 {
		t.Errorf("escaped label: %v %v; parsed %s", v, ok, m.Describe("weird"))
	}
	if _, err := ParseMetrics([]byte("broken{l=\"x} 1\n")); err == nil {
		t.Error("an unterminated label value must be an error")
	}
}

func TestRenderReportsMissingValues(t *testing.T) {
	_, err := Render([]byte("a: ${ONE}\nb: ${TWO}\n"), map[string]string{"ONE": "1"})
	if err == nil || !strings.Contains(err.Error(), "${TWO}") {
		t.Fatalf("err = %v, want one naming ${TWO}", err)
	}
}

// The shipped template must render, with the values a sandbox provides,
// into a config the operator accepts, pinned to the registry's agent.
func TestSandboxTemplateIsValid(t *testing.T) {
	path, err := TemplatePath()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := Render(tmpl, map[string]string{
		"MARATHON_URL": "http://127.0.0.1:1234", "MESOS_URL": "http://127.0.0.1:1234",
		"SSH_PRIVATE_KEY": filepath.Join(dir, "id"), "SSH_KNOWN_HOSTS": filepath.Join(dir, "kh"),
		"REGISTRY_IP": "198.18.0.2", "REGISTRY_IP_RE": regexp.QuoteMeta("198.18.0.2"),
		"STATE_DIR": filepath.Join(dir, "state"), "INTERVAL": "5s",
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := v1alpha1.Parse(out)
	if err != nil {
		t.Fatalf("rendered template is invalid: %v\n%s", err, out)
	}
	s := r.Spec
	if s.Registry.Address != "198.18.0.2:5000" || s.Reconcile.Interval.Duration.String() != "5s" {
		t.Errorf("address %q interval %s", s.Registry.Address, s.Reconcile.Interval.Duration)
	}
	want := []string{"hostname", "LIKE", `198\.18\.0\.2`}
	if len(s.App.Constraints) != 1 || strings.Join(s.App.Constraints[0], " ") != strings.Join(want, " ") {
		t.Errorf("constraints %q, want [%q]", s.App.Constraints, want)
	}
	if !s.TrustEnabled() || !s.ConntrackEnabled() || !s.PlacementEnabled() || s.Report() {
		t.Errorf("the sandbox must run every reconciler in enforce mode: %+v", s)
	}
}
