package controllers

import (
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/secret"
)

// A file that holds the users is remembered, so the next round does not
// verify its bcrypt hashes again; any other password or user is worked
// out anew and never remembered as matching.
func TestHtpasswdKeptRemembersOnlyMatches(t *testing.T) {
	users := map[string]secret.Value{"ci": "ci-password", "agents-1": "pull-1"}
	first, err := htpasswd.Keep(nil, users, bcrypt.MinCost)
	must(t, err)
	var k htpasswdKept
	for round := range 2 {
		r, err := k.keep(first.File, users, bcrypt.MinCost)
		must(t, err)
		if !r.Unchanged() || string(r.File) != string(first.File) || len(k.seen) != 1 {
			t.Fatalf("round %d: %+v, %d remembered; want the file unchanged and remembered once", round, r, len(k.seen))
		}
	}
	changed := map[string]secret.Value{"ci": "ci-password", "agents-1": "pull-1b"}
	r, err := k.keep(first.File, changed, bcrypt.MinCost)
	must(t, err)
	if !slices.Equal(r.Changed, []string{"agents-1"}) || len(k.seen) != 1 {
		t.Errorf("a changed password: %+v, %d remembered; want agents-1 changed and nothing new remembered", r, len(k.seen))
	}
	more := map[string]secret.Value{"ci": "ci-password", "agents-1": "pull-1", "agents-2": "pull-2"}
	r, err = k.keep(first.File, more, bcrypt.MinCost)
	must(t, err)
	if !slices.Equal(r.Added, []string{"agents-2"}) {
		t.Errorf("a new user: %+v", r)
	}
	if _, err := k.keep([]byte("not an htpasswd line\n"), users, bcrypt.MinCost); err == nil {
		t.Error("a malformed file came back without an error")
	}
}
