package controllers

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
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
type Credentials struct{ nodeBase }

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
		return syncCredentials(ctx, c, spec.PullCredentials, ps, hosts, o)
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
	hosts []string, o *outcome) error {
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
		form, err := readForm(ctx, c, f, owned, ps)
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

// formState is one form as found, and what it should hold.
type formState struct {
	credentialForm
	have    []byte
	exists  bool
	mode    fs.FileMode
	want    []byte
	gen     int64  // the generation it carries now
	problem string // why it is left untouched ("" none)
}

// readForm reads one form and merges owned into what it holds. A file
// that cannot be parsed comes back with a problem: it is never overwritten.
func readForm(ctx context.Context, c nodes.Conn, f credentialForm, owned map[string]dockerauth.Entry,
	ps state.PullSecret) (formState, error) {
	s := formState{credentialForm: f}
	var err error
	s.have, s.mode, err = c.ReadFile(ctx, f.path)
	s.exists = err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	config := s.have
	if s.exists && f.archive {
		if config, err = dockerauth.ReadTarGz(s.have); err != nil {
			s.problem = unreadable(f.path, err)
			return s, nil
		}
	}
	if s.gen, err = carriedGeneration(config, owned, ps); err != nil {
		s.problem = unreadable(f.path, err)
		return s, nil
	}
	s.want, err = dockerauth.Merge(config, owned)
	if errors.Is(err, dockerauth.ErrUnreadable) {
		s.problem = unreadable(f.path, err)
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if f.archive {
		s.want, err = dockerauth.TarGz(s.want)
	}
	return s, err
}

func unreadable(p string, err error) string {
	return fmt.Sprintf("%s left untouched: %v", p, err)
}

// writeCredentials writes the form when it differs, and fixes its mode.
// What it lists names generations and paths, never content.
func writeCredentials(ctx context.Context, c nodes.Conn, f formState, cur int, o *outcome) error {
	dir := path.Dir(f.path)
	switch {
	case !f.exists:
		newDir := false
		if f.private {
			if _, err := c.Stat(ctx, dir); errors.Is(err, fs.ErrNotExist) {
				newDir = true
			} else if err != nil {
				return err
			}
		}
		o.changes = append(o.changes, fmt.Sprintf("create %s (pull credentials generation %d, mode %s)", f.path, cur, octal(credentialsMode)))
		if err := c.WriteFile(ctx, f.path, f.want, credentialsMode); err != nil {
			return err
		}
		if newDir {
			// WriteFile makes missing parents 0755; the file itself is
			// 0600 from its first byte, the directory follows at once.
			o.changes = append(o.changes, fmt.Sprintf("chmod %s 700 (created for the credentials)", dir))
			return c.Chmod(ctx, dir, 0o700)
		}
		return nil
	case string(f.have) != string(f.want):
		why := fmt.Sprintf("generation %d -> %d", f.gen, cur)
		if f.gen == int64(cur) {
			why = "repair: the file differs from generation " + strconv.Itoa(cur)
		}
		o.changes = append(o.changes, fmt.Sprintf("update %s (pull credentials %s, mode %s)", f.path, why, octal(credentialsMode)))
		return c.WriteFile(ctx, f.path, f.want, credentialsMode)
	case f.mode != credentialsMode:
		o.changes = append(o.changes, fmt.Sprintf("chmod %s %s -> %s", f.path, octal(f.mode), octal(credentialsMode)))
		return c.Chmod(ctx, f.path, credentialsMode)
	}
	return nil
}

// carriedGeneration is the generation config carries for every owned
// host: 0 when a host has no entry, another user, or a password that is
// not valid now.
func carriedGeneration(config []byte, owned map[string]dockerauth.Entry, ps state.PullSecret) (int64, error) {
	var gen int64 = -1
	for _, host := range slices.Sorted(maps.Keys(owned)) {
		e, ok, err := dockerauth.Lookup(config, host)
		if err != nil {
			return 0, err
		}
		g := int64(0)
		if ok {
			g = validGeneration(e, ps)
		}
		if gen < 0 || g < gen {
			gen = g
		}
	}
	return max(gen, 0), nil
}

func validGeneration(e dockerauth.Entry, ps state.PullSecret) int64 {
	for _, u := range ps.Valid {
		if e.Username == u.Name && subtle.ConstantTimeCompare([]byte(e.Password.Reveal()), []byte(u.Password.Reveal())) == 1 {
			return int64(u.Generation)
		}
	}
	return 0
}

// credentialHosts are the auths keys clients use for the registry: its
// address (and the host alone on port 443), and every DNS name and IP SAN
// with the registry's port. Wildcard names name no host to pull from.
func credentialHosts(r *v1alpha1.RegistryEndpoint) ([]string, error) {
	if r == nil {
		return nil, errors.New("pull credentials need registry.address")
	}
	hosts, err := v1alpha1.RegistryDirNames(r.Address)
	if err != nil {
		return nil, fmt.Errorf("registry.address: %w", err)
	}
	port := r.RegistryPort()
	for _, n := range append(slices.Clone(r.DNSNames), r.IPAddresses...) {
		if strings.HasPrefix(n, "*.") {
			continue
		}
		a := n
		if port != 0 {
			a = net.JoinHostPort(n, strconv.Itoa(port))
		}
		more, err := v1alpha1.RegistryDirNames(a)
		if err != nil {
			return nil, fmt.Errorf("registry name %q: %w", n, err)
		}
		for _, h := range more {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	for _, h := range hosts {
		if err := dockerauth.CheckHost(h); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}
