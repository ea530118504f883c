package controllers

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"

	"github.com/registry-operator/registry-operator/internal/dockerauth"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/state"
)

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
