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
	"sync"

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
func readForm(ctx context.Context, c nodes.Conn, f credentialForm, hosts []string, owned map[string]dockerauth.Entry,
	ps state.PullSecret, memo *formMemo) (formState, error) {
	s := formState{credentialForm: f}
	var err error
	s.have, s.mode, err = c.ReadFile(ctx, f.path)
	s.exists = err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	d, err := memo.derive(f, s.have, s.exists, hosts, owned, ps)
	s.gen, s.want, s.problem = d.gen, d.want, d.problem
	return s, err
}

// formDerived is what a form's content derives to: the generation it
// carries, what it should hold, or why it is left untouched.
type formDerived struct {
	gen     int64
	want    []byte
	problem string
}

// deriveForm merges owned into have, the content of form f.
func deriveForm(f credentialForm, have []byte, exists bool, owned map[string]dockerauth.Entry,
	ps state.PullSecret) (formDerived, error) {
	var d formDerived
	config := have
	var err error
	if exists && f.archive {
		if config, err = dockerauth.ReadTarGz(have); err != nil {
			d.problem = unreadable(f.path, err)
			return d, nil
		}
	}
	if d.gen, err = carriedGeneration(config, owned, ps); err != nil {
		d.problem = unreadable(f.path, err)
		return d, nil
	}
	d.want, err = dockerauth.Merge(config, owned)
	if errors.Is(err, dockerauth.ErrUnreadable) {
		d.problem = unreadable(f.path, err)
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if f.archive {
		d.want, err = dockerauth.TarGz(d.want)
	}
	return d, err
}

// formMemo remembers, for each form, what the content last read derives
// to. In steady state every agent holds the same bytes, so a resync round
// parses, merges and (for docker.tar.gz) compresses them once rather than
// once per agent. A nil *formMemo derives every time.
type formMemo struct {
	mu   sync.Mutex
	last map[credentialForm]formMemoEntry
}

type formMemoEntry struct {
	have    string
	exists  bool
	current state.PullUser
	valid   []state.PullUser
	hosts   []string
	d       formDerived
}

// derive is deriveForm, remembered. owned must be hosts, each mapped to
// the current pull user (as syncCredentials builds it): the memo is keyed
// by hosts and the user rather than by the map.
func (m *formMemo) derive(f credentialForm, have []byte, exists bool, hosts []string, owned map[string]dockerauth.Entry,
	ps state.PullSecret) (formDerived, error) {
	if m == nil {
		return deriveForm(f, have, exists, owned, ps)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.last[f]; ok && e.exists == exists && e.have == string(have) && e.current == ps.Current &&
		slices.Equal(e.valid, ps.Valid) && slices.Equal(e.hosts, hosts) {
		return e.d, nil
	}
	d, err := deriveForm(f, have, exists, owned, ps)
	if err != nil {
		return d, err
	}
	if m.last == nil {
		m.last = map[credentialForm]formMemoEntry{}
	}
	m.last[f] = formMemoEntry{have: string(have), exists: exists, current: ps.Current, valid: slices.Clone(ps.Valid),
		hosts: slices.Clone(hosts), d: d}
	return d, nil
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
