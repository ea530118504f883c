package controllers

import (
	"context"
	"io/fs"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/dockerauth"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Credentials keeps the pull credentials (the current pull user and
// password, for every name clients use for the registry) on every agent,
// in each form spec.pullCredentials enables: docker.tar.gz for the Docker
// containerizer's fetch URI, the Docker CLI's config.json, and a file for
// the Mesos agent's --docker_config. Every form is merged: entries for
// other registries are kept, and a file that cannot be parsed is left as
// it is and reported. It records the generation each agent carries, which
// the pullsecret reconciler waits for before it drops an old password.
type Credentials struct {
	nodeBase
	forms formMemo
}

// NewCredentials returns the credentials reconciler.
func NewCredentials(d Deps, o NodeOptions) *Credentials {
	return &Credentials{nodeBase: newNodeBase(d, reconciler.Credentials, o)}
}

// credentialsMode is every credentials file's mode: they hold a password.
const credentialsMode fs.FileMode = 0o600

// Reconcile implements manager.Reconciler for one node key.
func (r *Credentials) Reconcile(ctx context.Context, key string) (manager.Result, error) {
	spec := r.Spec()
	if !spec.CredentialsEnabled() {
		return manager.Result{}, nil
	}
	ps := r.Store.PullSecret()
	if ps.Current.Password.Empty() {
		return manager.Result{}, nil // TopicPullSecret brings a pass once there is a password
	}
	hosts, err := credentialHosts(spec.Registry)
	if err != nil {
		return manager.Result{}, manager.TerminalError(err)
	}
	return r.nodePass(ctx, reconciler.Credentials, key, spec, func(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error {
		return syncCredentials(ctx, c, spec.PullCredentials, ps, hosts, &r.forms, o)
	})
}

// credentialForm is one enabled form of the credentials on an agent.
type credentialForm struct {
	path    string
	archive bool // docker.tar.gz: the config inside .docker/config.json
	private bool // create a missing parent directory 0700 (~/.docker)
}

func forms(p *v1alpha1.PullCredentialsSpec) []credentialForm {
	tgz, cfg, mesos := p.Paths()
	var out []credentialForm
	if tgz != "" {
		out = append(out, credentialForm{path: tgz, archive: true})
	}
	if cfg != "" {
		out = append(out, credentialForm{path: cfg, private: true})
	}
	if mesos != "" {
		out = append(out, credentialForm{path: mesos})
	}
	return out
}

// syncCredentials brings every form on the node to the current pull user.
// Every form is read before any is written, so what the node carries is
// known even when a write fails.
func syncCredentials(ctx context.Context, c nodes.Conn, p *v1alpha1.PullCredentialsSpec, ps state.PullSecret,
	hosts []string, memo *formMemo, o *outcome) error {
	cur := ps.Current
	o.want = state.CredentialsHash(int64(cur.Generation))
	entry := dockerauth.Entry{Username: cur.Name, Password: cur.Password}
	owned := make(map[string]dockerauth.Entry, len(hosts))
	for _, h := range hosts {
		owned[h] = entry
	}
	carried := int64(cur.Generation)
	var found []formState
	var problems []string
	for _, f := range forms(p) {
		form, err := readForm(ctx, c, f, hosts, owned, ps, memo)
		if err != nil {
			return err
		}
		if form.problem != "" {
			problems = append(problems, form.problem)
			o.pending = true
		}
		carried = min(carried, form.gen)
		found = append(found, form)
	}
	o.detail = strings.Join(problems, "; ")
	o.carried = state.CredentialsHash(carried)
	for _, form := range found {
		if form.problem != "" {
			continue
		}
		if err := writeCredentials(ctx, c, form, cur.Generation, o); err != nil {
			return err
		}
	}
	if !o.isPending() {
		o.carried = o.want
	}
	return nil
}
