package v1alpha1

import "github.com/registry-operator/registry-operator/internal/cron"

// maintenance checks spec.maintenance.
func (v *validator) maintenance(s *Spec) {
	v.metricsPort(s)
	m := s.Maintenance
	if m == nil {
		return
	}
	if !s.PlacementEnabled() {
		v.add("spec.maintenance", "needs spec.app, spec.nodes and tls (not insecure): the read-only switch is a config "+
			"file placed on the registry's agents, and garbage-collect runs there over SSH")
	}
	if g := m.GarbageCollection; g != nil {
		v.garbageCollection(g)
	}
	if st := m.Storage; st != nil && st.WarnUsedRatio != nil {
		if r := *st.WarnUsedRatio; !finite(r) || r <= 0 || r > 1 {
			v.add("spec.maintenance.storage.warnUsedRatio", "must be greater than 0 and at most 1 (0.8 is 80%% used), got %v", r)
		}
	}
}

func (v *validator) garbageCollection(g *GarbageCollectionSpec) {
	p := "spec.maintenance.garbageCollection."
	if g.Schedule != "" {
		if _, err := cron.Parse(g.Schedule); err != nil {
			v.add(p+"schedule", "is not a five-field cron schedule in UTC such as \"0 3 * * 0\": %v", err)
		}
	}
	okMax := v.positive(p+"maxReadOnly", g.MaxReadOnly)
	okTimeout := v.positive(p+"timeout", g.Timeout)
	if okMax && okTimeout && g.Timeout.Duration >= g.MaxReadOnly.Duration {
		v.add(p+"timeout", "must be shorter than maxReadOnly (%s): the window also covers the switch to read-only and back, got %s",
			g.MaxReadOnly.Duration, g.Timeout.Duration)
	}
	v.enum(p+"runner", g.Runner, gcRunners)
	if g.Runner == RunnerBinary {
		v.absPath(p+"binaryPath", g.BinaryPath, true)
		if g.BinaryPath != "" && (g.BinaryPath == "/" || g.BinaryPath[len(g.BinaryPath)-1] == '/') {
			v.add(p+"binaryPath", "must name the registry binary, got %q", g.BinaryPath)
		}
	}
}

// metricsPort checks spec.app.metricsPort: the registry's debug listener
// is configured in its config file, so it needs the config-file mode.
func (v *validator) metricsPort(s *Spec) {
	a := s.App
	if a == nil || a.MetricsPort == 0 {
		return
	}
	v.port("spec.app.metricsPort", a.MetricsPort, false)
	if a.MetricsPort == a.ContainerPort {
		v.add("spec.app.metricsPort", "must differ from containerPort (%d): the debug listener needs a port of its own", a.ContainerPort)
	}
	if !s.PlacementEnabled() {
		v.add("spec.app.metricsPort", "needs spec.nodes and tls (not insecure): the debug listener is set in the "+
			"registry's config file, which is placed on its agents")
	}
}
