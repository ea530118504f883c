package htpasswd

import (
	"fmt"
	"maps"
	"slices"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// Result is a new file and what changed, by user name (never a password or
// hash), for plans and status.
type Result struct {
	File    []byte
	Kept    []string // line reused: the password is unchanged
	Added   []string // new user
	Changed []string // password changed: hashed anew
	Removed []string // in the old file, no longer wanted
}

// Unchanged reports whether the new file says the same as the old one.
func (r Result) Unchanged() bool {
	return len(r.Added) == 0 && len(r.Changed) == 0 && len(r.Removed) == 0
}

// Keep returns the file for users (name to plain password) given the
// existing file: an existing line whose hash matches its password is kept
// as it is, new and changed passwords are hashed at cost, and users not in
// users are dropped. With the same users and passwords it returns the
// existing bytes (sorted), so nothing needs writing.
//
// An existing file that does not parse is an error wrapping ErrMalformed;
// the file is the operator's alone, so the caller may then start over with
// Keep(nil, ...), which hashes every password.
func Keep(existing []byte, users map[string]secret.Value, cost int) (Result, error) {
	old, err := Parse(existing)
	if err != nil {
		return Result{}, err
	}
	hashes := make(map[string]string, len(users))
	var r Result
	for _, name := range slices.Sorted(maps.Keys(users)) {
		pw := users[name]
		if err := CheckName(name); err != nil {
			return Result{}, err
		}
		if err := checkPassword(name, pw); err != nil {
			return Result{}, err
		}
		if h, ok := old[name]; ok {
			if match, _ := Verify(h, pw); match {
				hashes[name] = h
				r.Kept = append(r.Kept, name)
				continue
			}
			r.Changed = append(r.Changed, name)
		} else {
			r.Added = append(r.Added, name)
		}
		h, err := Hash(pw, cost)
		if err != nil {
			return Result{}, fmt.Errorf("hash password of user %q: %w", name, err)
		}
		hashes[name] = h
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := users[name]; !ok {
			r.Removed = append(r.Removed, name)
		}
	}
	if r.File, err = Render(hashes); err != nil {
		return Result{}, err
	}
	return r, nil
}
