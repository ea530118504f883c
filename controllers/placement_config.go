package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/state"
)

// registryFiles is what placement puts beside tls.crt and tls.key for one
// pass: the config file (always) and the htpasswd users (with auth).
type registryFiles struct {
	config    renderedConfig
	configErr error
	// placed is the config hash the node holds after the pass ("" when the
	// pass left it without a complete, current set of files).
	placed string
	// held is what the node's htpasswd file holds after the pass (the
	// RegistryPullUsers view); unknown unless the pass established it.
	held state.HtpasswdHeld
}

// placeRegistryFiles writes htpasswd (with auth) and then config.yml, both
// 0600: the registry runs as root and reads them through the read-only
// volume. htpasswd comes first, so a registry started on the new config
// finds its users. The htpasswd bytes are kept when no password changed
// (bcrypt hashes are salted: hashing anew every pass would rewrite the
// file each time); the registry re-reads the file, so no restart follows.
func (p *Placement) placeRegistryFiles(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, dir string, f *registryFiles, o *outcome) error {
	if f.configErr != nil {
		return f.configErr
	}
	htpasswdPath := path.Join(dir, marathon.HtpasswdFile)
	complete := true
	if spec.AuthEnabled() {
		ok, err := p.syncHtpasswd(ctx, c, spec, htpasswdPath, f, o)
		if err != nil {
			return err
		}
		complete = ok
	} else if err := removeIfPlaced(ctx, c, dir, htpasswdPath, "spec.auth is not set", o); err != nil {
		return err
	}
	if err := syncFile(ctx, c, path.Join(dir, marathon.ConfigFile), f.config.File, 0o600, o); err != nil {
		return err
	}
	if complete && !o.isPending() {
		f.placed = f.config.Hash
	}
	return nil
}

// syncHtpasswd makes the htpasswd file hold the spec's users and every
// valid pull user. ok=false: the file could not be completed yet (no pull
// password); an existing file is then left as it is, never stripped of
// the pull users agents are using.
//
// Once the file holds them, f.held names the pull users in it: the
// pullsecret reconciler hands a new pull password to agents only when
// every agent that may run the registry holds it.
func (p *Placement) syncHtpasswd(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, file string, f *registryFiles, o *outcome) (bool, error) {
	ps := p.Store.PullSecret()
	if !ps.Ready {
		o.pending = true
		o.detail = "htpasswd waits for the pull password (pullsecret reconciler"
		if ps.Reason != "" {
			o.detail += ": " + ps.Reason
		}
		o.detail += ")"
		_, err := c.Stat(ctx, file)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	users, err := htpasswdUsers(spec, ps, p.readFile)
	if err != nil {
		return false, err
	}
	have, _, err := c.ReadFile(ctx, file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	res, err := p.htpasswdKept.keep(have, users, p.htpasswdCost)
	if errors.Is(err, htpasswd.ErrMalformed) {
		// The file is the operator's alone: start over rather than stall.
		o.changes = append(o.changes, "replace "+file+": it does not parse as an htpasswd file")
		res, err = htpasswd.Keep(nil, users, p.htpasswdCost)
	}
	if err != nil {
		return false, fmt.Errorf("htpasswd %s: %w", file, err)
	}
	if !res.Unchanged() {
		o.changes = append(o.changes, htpasswdChanges(file, res)...)
	}
	if err := syncFile(ctx, c, file, res.File, 0o600, o); err != nil {
		return false, err
	}
	if !o.isPending() {
		for _, u := range ps.Valid {
			f.held.PullUsers = append(f.held.PullUsers, u.Name)
		}
	}
	return true, nil
}

// htpasswdUsers is every user the registry must accept: spec.auth's users,
// their passwords read from their passwordFile now (a changed file takes
// effect this pass), and the valid pull users.
func htpasswdUsers(spec *v1alpha1.Spec, ps state.PullSecret, readFile func(string) ([]byte, error)) (map[string]secret.Value, error) {
	users := map[string]secret.Value{}
	for i, u := range spec.Auth.Htpasswd.Users {
		pw, err := readPasswordFile("spec.auth.htpasswd.users["+strconv.Itoa(i)+"].passwordFile", u.PasswordFile, readFile)
		if err != nil {
			return nil, err
		}
		users[u.Name] = pw
	}
	for _, u := range ps.Valid {
		users[u.Name] = u.Password
	}
	return users, nil
}

// htpasswdChanges names users, never passwords or hashes.
func htpasswdChanges(file string, r htpasswd.Result) []string {
	var out []string
	for _, x := range []struct {
		what  string
		names []string
	}{{"add user", r.Added}, {"new password for", r.Changed}, {"remove user", r.Removed}} {
		if len(x.names) > 0 {
			out = append(out, fmt.Sprintf("%s: %s %s", file, x.what, strings.Join(x.names, ", ")))
		}
	}
	return out
}

// removePlacedRegistryFiles deletes config.yml and htpasswd from an agent
// that may no longer run the registry, where the operator placed them.
func removePlacedRegistryFiles(ctx context.Context, c nodes.Conn, dir string, o *outcome) error {
	for _, name := range []string{marathon.HtpasswdFile, marathon.ConfigFile} {
		if err := removeIfPlaced(ctx, c, dir, path.Join(dir, name), "agent is no longer a registry candidate", o); err != nil {
			return err
		}
	}
	return nil
}

// removeIfPlaced deletes file when it exists and the directory carries the
// operator's marker (a file someone else put there is left alone).
func removeIfPlaced(ctx context.Context, c nodes.Conn, dir, file, why string, o *outcome) error {
	for _, p := range []string{path.Join(dir, placedMarker), file} {
		if _, err := c.Stat(ctx, p); errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
	}
	o.changes = append(o.changes, "remove "+file+" ("+why+")")
	return c.Remove(ctx, file)
}
