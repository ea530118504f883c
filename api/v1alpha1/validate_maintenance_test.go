package v1alpha1

import (
	"math"
	"testing"
	"time"
)

// withGC turns maintenance on in a defaulted sample and defaults again.
func withGC(r *Registry, g GarbageCollectionSpec) {
	r.Spec.Maintenance = &MaintenanceSpec{GarbageCollection: &g}
	Default(r)
}

func TestMaintenanceDefaults(t *testing.T) {
	r := sample(t)
	Default(r)
	if r.Spec.MaintenanceEnabled() || r.Spec.GCScheduled() {
		t.Fatal("maintenance is opt-in: the sample has none")
	}
	withGC(r, GarbageCollectionSpec{Schedule: "0 3 * * 0"})
	g := r.Spec.Maintenance.GarbageCollection
	if g.MaxReadOnly.Duration != DefaultMaxReadOnly || g.Timeout.Duration != DefaultGCTimeout || g.Runner != RunnerDocker || g.BinaryPath != "" {
		t.Errorf("garbageCollection defaults: %+v", g)
	}
	if w := r.Spec.Maintenance.Storage.WarnUsedRatio; w == nil || *w != DefaultWarnUsedRatio {
		t.Errorf("warnUsedRatio default: %v", w)
	}
	if !r.Spec.GCScheduled() {
		t.Error("a schedule with app, nodes and tls schedules GC")
	}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatalf("maintenance on the sample must validate: %v", errs)
	}
	withGC(r, GarbageCollectionSpec{Runner: RunnerBinary})
	if g := r.Spec.Maintenance.GarbageCollection; g.BinaryPath != DefaultGCBinaryPath {
		t.Errorf("runner binary defaults binaryPath, got %q", g.BinaryPath)
	}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatalf("runner binary must validate: %v", errs)
	}
}

func TestMaintenanceRefused(t *testing.T) {
	ratio := func(f float64) func(r *Registry) {
		return func(r *Registry) {
			withGC(r, GarbageCollectionSpec{})
			r.Spec.Maintenance.Storage.WarnUsedRatio = &f
		}
	}
	p := "spec.maintenance.garbageCollection."
	tests := map[string]struct {
		mutate func(r *Registry)
		path   string
		reason string
	}{
		"bad cron":          {func(r *Registry) { withGC(r, GarbageCollectionSpec{Schedule: "0 3 * *"}) }, p + "schedule", "five-field"},
		"cron out of range": {func(r *Registry) { withGC(r, GarbageCollectionSpec{Schedule: "0 3 * * 8"}) }, p + "schedule", "day-of-week"},
		"maxReadOnly negative": {func(r *Registry) { withGC(r, GarbageCollectionSpec{MaxReadOnly: D(-time.Minute)}) },
			p + "maxReadOnly", "greater than zero"},
		"maxReadOnly garbage": {func(r *Registry) { withGC(r, GarbageCollectionSpec{MaxReadOnly: Duration{Raw: "soon"}}) },
			p + "maxReadOnly", "not a duration"},
		"timeout not inside maxReadOnly": {func(r *Registry) {
			withGC(r, GarbageCollectionSpec{MaxReadOnly: D(10 * time.Minute), Timeout: D(10 * time.Minute)})
		}, p + "timeout", "shorter than maxReadOnly"},
		"unknown runner": {func(r *Registry) { withGC(r, GarbageCollectionSpec{Runner: "kubectl"}) }, p + "runner", "docker | binary"},
		"relative binary": {func(r *Registry) {
			withGC(r, GarbageCollectionSpec{Runner: RunnerBinary, BinaryPath: "docker-registry"})
		},
			p + "binaryPath", "absolute"},
		"shell in binary": {func(r *Registry) {
			withGC(r, GarbageCollectionSpec{Runner: RunnerBinary, BinaryPath: "/usr/bin/registry;reboot"})
		}, p + "binaryPath", "may only hold"},
		"binary with dots": {func(r *Registry) {
			withGC(r, GarbageCollectionSpec{Runner: RunnerBinary, BinaryPath: "/usr/../bin/registry"})
		}, p + "binaryPath", "clean path"},
		"binary a directory": {func(r *Registry) { withGC(r, GarbageCollectionSpec{Runner: RunnerBinary, BinaryPath: "/usr/bin/"}) },
			p + "binaryPath", "must name the registry binary"},
		"ratio zero":  {ratio(0), "spec.maintenance.storage.warnUsedRatio", "greater than 0"},
		"ratio above": {ratio(1.5), "spec.maintenance.storage.warnUsedRatio", "at most 1"},
		"ratio NaN":   {ratio(math.NaN()), "spec.maintenance.storage.warnUsedRatio", "at most 1"},
		"ratio Inf":   {ratio(math.Inf(1)), "spec.maintenance.storage.warnUsedRatio", "at most 1"},
		"without app": {func(r *Registry) {
			r.Spec.App = nil
			withGC(r, GarbageCollectionSpec{})
		}, "spec.maintenance", "needs spec.app"},
		"metricsPort is containerPort": {func(r *Registry) { r.Spec.App.MetricsPort = r.Spec.App.ContainerPort },
			"spec.app.metricsPort", "must differ from containerPort"},
		"metricsPort out of range": {func(r *Registry) { r.Spec.App.MetricsPort = 70000 }, "spec.app.metricsPort", "between 1 and 65535"},
		"metricsPort without nodes": {func(r *Registry) {
			r.Spec.Nodes = nil
			r.Spec.App.MetricsPort = 5001
		}, "spec.app.metricsPort", "config file"},
		"without nodes": {func(r *Registry) {
			r.Spec.Nodes = nil
			withGC(r, GarbageCollectionSpec{})
		}, "spec.maintenance", "needs spec.app, spec.nodes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := sample(t)
			Default(r)
			tc.mutate(r)
			if errs := Validate(r); !hasFieldError(errs, tc.path, tc.reason) {
				t.Fatalf("want an error at %s containing %q, got:\n%v", tc.path, tc.reason, errs)
			}
		})
	}
}
