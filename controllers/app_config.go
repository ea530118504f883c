package controllers

import (
	"fmt"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/state"
)

// registryInputs reads or renders what the registry app's definition needs
// besides the spec: the config file's hash when the registry runs from
// config.yml, the HTTP secret when it still runs from env.
func (r *AppReconciler) registryInputs(spec *v1alpha1.Spec) (marathon.RegistryInputs, error) {
	if marathon.ConfigFileMode(spec) {
		cfg, err := renderRegistryConfig(spec, r.Store.PKI(), r.Store.RegistryMaintenance(), r.opts.ReadFile)
		if err != nil {
			return marathon.RegistryInputs{}, err
		}
		return marathon.RegistryInputs{ConfigHash: cfg.Hash}, nil
	}
	var in marathon.RegistryInputs
	if f := spec.App.HTTPSecretFile; f != "" {
		b, err := r.opts.ReadFile(f)
		if err != nil {
			return in, fmt.Errorf("read app.httpSecretFile: %w", err)
		}
		in.HTTPSecret = string(b)
	}
	return in, nil
}

// waitForConfig holds back a create, or an update that changes the config
// the registry runs from (a new config.yml, or the move from env to the
// file), until placement reports that config on the agents: a task started
// before would find no file, or the old one. cur is nil for a create.
// wait=true ends the pass: it polls until placement catches up.
func (r *AppReconciler) waitForConfig(p *pass, cur *marathon.AppStatus) (manager.Result, bool, error) {
	want := p.desired.Labels[marathon.ConfigLabel]
	if want == "" {
		return manager.Result{}, false, nil // the registry runs from env, or this is the UI
	}
	if cur != nil {
		labels, _ := cur.Definition["labels"].(map[string]any)
		if have, _ := labels[marathon.ConfigLabel].(string); have == want {
			return manager.Result{}, false, nil // the tasks already run with it
		}
	}
	// Only the agents the app may run on: where its tasks can start. One
	// of them unreachable keeps the change waiting (a task started there
	// would find no file), shown in the diff.
	a, ok := servedAppFor(p.spec, p.key)
	if !ok {
		return manager.Result{}, false, nil // nothing places a config for it
	}
	candidate := func(n state.PlacedNode) bool {
		ok, err := matchHostConstraints(a.app.Constraints, n.Hostname, hostOnly(n.Address))
		return ok || err != nil
	}
	view := a.configPlacement(r.Store)
	missing := view.Missing(want, candidate)
	holding := 0
	for _, n := range view.Nodes {
		if n.Hash == want && candidate(n) {
			holding++
		}
	}
	if holding > 0 && len(missing) == 0 {
		return manager.Result{}, false, nil
	}
	where := "any agent the app may run on yet"
	if len(missing) > 0 {
		where = strings.Join(missing, ",")
	}
	if cur == nil {
		p.st.Diff = []string{"app: <unset> -> create " + p.desired.Container.Docker.Image}
	}
	line := fmt.Sprintf("config: waiting for placement of %s (sha256 %s) on %s", marathon.ConfigFile, short(want), where)
	p.st.Diff = append(p.st.Diff, line)
	if p.spec.Report() {
		// Placement places nothing in report mode: the change stays owed
		// and shown, and the pass ends rather than polls.
		res, err := r.record(p, nil)
		return res, true, err
	}
	res, err := r.recordRequeue(p, nil)
	return res, true, err
}
