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
	var problems []string
	for _, f := range forms(p) {
		gen, problem, err := syncForm(ctx, c, f, owned, ps, o)
		if err != nil {
			return err
		}
		if problem != "" {
			problems = append(problems, problem)
			o.pending = true
		}
		carried = min(carried, gen)
	}
	o.detail = strings.Join(problems, "; ")
	if !o.isPending() {
		carried = int64(cur.Generation)
	}
	o.carried = state.CredentialsHash(carried)
	return nil
}

// syncForm makes one form hold owned, merged into what the file holds. It
// returns the generation the file carried before, or a problem (a file
// that cannot be parsed, which is never overwritten).
func syncForm(ctx context.Context, c nodes.Conn, f credentialForm, owned map[string]dockerauth.Entry,
	ps state.PullSecret, o *outcome) (int64, string, error) {
	have, mode, err := c.ReadFile(ctx, f.path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, "", err
	}
	config := have
	if exists && f.archive {
		if config, err = dockerauth.ReadTarGz(have); err != nil {
			return 0, unreadable(f.path, err), nil
		}
	}
	gen, err := carriedGeneration(config, owned, ps)
	if err != nil {
		return 0, unreadable(f.path, err), nil
	}
	want, err := dockerauth.Merge(config, owned)
	if errors.Is(err, dockerauth.ErrUnreadable) {
		return 0, unreadable(f.path, err), nil
	}
	if err != nil {
		return 0, "", err
	}
	if f.archive {
		if want, err = dockerauth.TarGz(want); err != nil {
			return 0, "", err
		}
	}
	if err := writeCredentials(ctx, c, f, have, exists, mode, want, gen, ps.Current.Generation, o); err != nil {
		return 0, "", err
	}
	return gen, "", nil
}

func unreadable(p string, err error) string {
	return fmt.Sprintf("%s left untouched: %v", p, err)
}

// writeCredentials writes want when the file differs, and fixes its mode.
// What it lists names generations and paths, never content.
func writeCredentials(ctx context.Context, c nodes.Conn, f credentialForm, have []byte, exists bool, mode fs.FileMode,
	want []byte, gen int64, cur int, o *outcome) error {
	dir := path.Dir(f.path)
	switch {
	case !exists:
		newDir := false
		if f.private {
			if _, err := c.Stat(ctx, dir); errors.Is(err, fs.ErrNotExist) {
				newDir = true
			} else if err != nil {
				return err
			}
		}
		o.changes = append(o.changes, fmt.Sprintf("create %s (pull credentials generation %d, mode %s)", f.path, cur, octal(credentialsMode)))
		if err := c.WriteFile(ctx, f.path, want, credentialsMode); err != nil {
			return err
		}
		if newDir {
			// WriteFile makes missing parents 0755; the file itself is
			// 0600 from its first byte, the directory follows at once.
			o.changes = append(o.changes, fmt.Sprintf("chmod %s 700 (created for the credentials)", dir))
			return c.Chmod(ctx, dir, 0o700)
		}
		return nil
	case string(have) != string(want):
		why := fmt.Sprintf("generation %d -> %d", gen, cur)
		if gen == int64(cur) {
			why = "repair: entries differ from generation " + strconv.Itoa(cur)
		}
		o.changes = append(o.changes, fmt.Sprintf("update %s (pull credentials %s, mode %s)", f.path, why, octal(credentialsMode)))
		return c.WriteFile(ctx, f.path, want, credentialsMode)
	case mode != credentialsMode:
		o.changes = append(o.changes, fmt.Sprintf("chmod %s %s -> %s", f.path, octal(mode), octal(credentialsMode)))
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
