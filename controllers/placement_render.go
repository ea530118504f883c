package controllers

import (
	"bytes"
	"sync"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/state"
)

// configRenders keeps each served app's rendered config.yml for a resync
// round, so a pass over a thousand agents renders it (reading
// httpSecretFile or the mirror's credential files, building the YAML,
// keying its hash) once, not once per agent, most of which are no
// candidate and only record that they need none.
//
// A render is reused while its inputs in memory are the same (renderInputs,
// the server key) and no node has used it yet: the first node that comes
// back for a second pass starts a new round with a new render. So every
// node's pass works from a render made after its previous pass began, and
// a secret file changed on disk reaches each node by its next pass but one.
type configRenders struct {
	mu   sync.Mutex
	last map[string]*configRender // by servedApp.kind
}

type configRender struct {
	in        renderInputs
	serverKey []byte
	config    renderedConfig
	err       error
	used      map[string]struct{} // nodes that have had it this round
}

// renderInputs is every value of the spec and the store, besides the
// server key, that renderRegistryConfig and renderMirrorConfig read: a
// field they start to read must be added here, or a change of it would
// wait for the next round.
type renderInputs struct {
	kind string
	// The registry's.
	containerPort, metricsPort int
	deleteEnabled              string
	httpSecretFile             string
	auth                       bool
	realm                      string
	readOnly                   bool
	// The mirror's.
	remoteURL, usernameFile, passwordFile string
}

func renderInputsFor(a servedApp, spec *v1alpha1.Spec, m state.RegistryMaintenance) renderInputs {
	in := renderInputs{kind: a.kind}
	if a.kind == servedMirror {
		mr := spec.Mirror
		in.containerPort, in.remoteURL = mr.ContainerPort, mr.RemoteURL
		in.usernameFile, in.passwordFile = mr.RemoteUsernameFile, mr.RemotePasswordFile
		return in
	}
	app := spec.App
	in.containerPort, in.metricsPort = app.ContainerPort, app.MetricsPort
	in.deleteEnabled, in.httpSecretFile = app.Env[envDeleteEnabled], app.HTTPSecretFile
	if in.auth = spec.AuthEnabled(); in.auth {
		in.realm = spec.Auth.Htpasswd.Realm
	}
	in.readOnly = m.ReadOnly
	return in
}

// render returns the app's config for node's pass, rendering it anew when
// the inputs changed or node already had the current render.
func (r *configRenders) render(a servedApp, spec *v1alpha1.Spec, pk state.PKI, m state.RegistryMaintenance,
	node string, readFile func(string) ([]byte, error)) (renderedConfig, error) {
	in := renderInputsFor(a, spec, m)
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.last[a.kind]
	if c == nil || c.in != in || !bytes.Equal(c.serverKey, pk.ServerKey) || has(c.used, node) {
		c = r.fresh(a, spec, pk, m, in, readFile)
	}
	c.used[node] = struct{}{}
	return c.config, c.err
}

func (r *configRenders) fresh(a servedApp, spec *v1alpha1.Spec, pk state.PKI, m state.RegistryMaintenance,
	in renderInputs, readFile func(string) ([]byte, error)) *configRender {
	if r.last == nil {
		r.last = map[string]*configRender{}
	}
	c := r.last[a.kind]
	if c == nil {
		c = &configRender{used: map[string]struct{}{}}
		r.last[a.kind] = c
	}
	clear(c.used) // keeps its buckets: the next round needs as many
	c.in, c.serverKey = in, bytes.Clone(pk.ServerKey)
	if a.kind == servedMirror {
		c.config, c.err = renderMirrorConfig(spec, pk, readFile)
	} else {
		c.config, c.err = renderRegistryConfig(spec, pk, m, readFile)
	}
	return c
}

func has(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}
