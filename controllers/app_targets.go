package controllers

import (
	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Kinds of servedApp.
const (
	servedRegistry = "registry"
	servedMirror   = "mirror"
)

// servedApp is one app that serves the operator's server certificate from
// files placement puts on the agents its constraints allow, and runs
// docker-registry from a config.yml there: the registry app and the
// pull-through mirror. The app and placement reconcilers treat both alike
// through it; only the config file and the names the probe checks differ.
type servedApp struct {
	kind string
	app  *v1alpha1.AppSpec
	// field names the constraints in messages (app.constraints).
	field string
	// endpoint is what clients name the app by: the probe checks the
	// served certificate against it.
	endpoint *v1alpha1.RegistryEndpoint
	// enabled is false for a mirror the spec turned off: placement then
	// removes what it placed for it.
	enabled bool
}

// servedApps lists the apps placement keeps files for, the registry first.
// It is empty unless placement runs (app, nodes, TLS not insecure).
func servedApps(spec *v1alpha1.Spec) []servedApp {
	if !spec.PlacementEnabled() {
		return nil
	}
	out := []servedApp{{kind: servedRegistry, app: spec.App, field: "app.constraints", endpoint: spec.Registry, enabled: true}}
	if m := spec.Mirror; m != nil {
		out = append(out, servedApp{kind: servedMirror, app: m.AppSpec(), field: "mirror.constraints",
			endpoint: &v1alpha1.RegistryEndpoint{Address: m.Address}, enabled: spec.MirrorEnabled()})
	}
	return out
}

// servedAppFor is the enabled served app whose Marathon id is key.
func servedAppFor(spec *v1alpha1.Spec, key string) (servedApp, bool) {
	for _, a := range servedApps(spec) {
		if a.enabled && a.app.ID == key {
			return a, true
		}
	}
	return servedApp{}, false
}

// render is the app's config.yml for the spec and state in force.
func (a servedApp) render(spec *v1alpha1.Spec, st *state.Store, readFile func(string) ([]byte, error)) (renderedConfig, error) {
	if a.kind == servedMirror {
		return renderMirrorConfig(spec, st.PKI(), readFile)
	}
	return renderRegistryConfig(spec, st.PKI(), st.RegistryMaintenance(), readFile)
}

// configPlacement is placement's view of the app's config file.
func (a servedApp) configPlacement(st *state.Store) state.RegistryConfigPlacement {
	if a.kind == servedMirror {
		return st.AppConfigPlacement(a.app.ID)
	}
	return st.RegistryConfigPlacement()
}

// setConfigPlaced records the config hash node addr holds for the app.
func (a servedApp) setConfigPlaced(st *state.Store, addr, hash string) {
	if a.kind == servedMirror {
		st.SetAppConfigPlaced(a.app.ID, addr, hash)
		return
	}
	st.SetRegistryConfigPlaced(addr, hash)
}
