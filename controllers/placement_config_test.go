package controllers

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/state"
)

// While the pull password does not exist, placement leaves an existing
// htpasswd file as it is (agents may be pulling with the users in it) and
// reports the node pending; it does not claim the config placed where the
// htpasswd file is missing, so the app is not started on a config whose
// users file is absent. Once the password is there, the file gets it.
func TestPlacementHtpasswdWaitsForPullSecret(t *testing.T) {
	ciFile := filepath.Join(t.TempDir(), "ci.password")
	must(t, os.WriteFile(ciFile, []byte("ci-password\n"), 0o600))
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{
			Users: []v1alpha1.HtpasswdUser{{Name: "ci", PasswordFile: ciFile}}}}
	})
	e.opts.HtpasswdCost = bcrypt.MinCost
	publishBundle(e.store, "CA1")
	r := NewPlacement(e.deps, e.opts)
	ctx := context.Background()
	dir := e.spec.App.CertsHostPath
	htFile := path.Join(dir, marathon.HtpasswdFile)

	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeA, reconciler.Placement)
	if c.InSync || !strings.Contains(c.Detail, "waits for the pull password") {
		t.Errorf("without a pull password: %+v", c)
	}
	if _, ok := e.node(nodeA).files[htFile]; ok {
		t.Error("htpasswd written without the pull users")
	}
	if m := e.store.RegistryConfigPlacement().Missing("", nil); slices.Contains(m, nodeA) {
		t.Errorf("config reported placed although its htpasswd file is missing: %+v", e.store.RegistryConfigPlacement())
	}

	// An existing file (from before an operator restart) is kept as it is.
	old, err := htpasswd.Keep(nil, map[string]secret.Value{"agents-3": "in-use"}, bcrypt.MinCost)
	must(t, err)
	e.node(nodeA).files[htFile] = old.File
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if got := string(e.node(nodeA).files[htFile]); got != string(old.File) {
		t.Errorf("htpasswd changed while the pull password was not known:\n%s", got)
	}

	e.store.SetPullSecret(state.PullSecret{Ready: true, Current: state.PullUser{Name: "agents-4", Generation: 4, Password: "pw4"},
		Valid: []state.PullUser{{Name: "agents-4", Generation: 4, Password: "pw4"}}})
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	users, err := htpasswd.Parse(e.node(nodeA).files[htFile])
	must(t, err)
	if _, ok := users["agents-4"]; !ok || len(users) != 2 {
		t.Errorf("htpasswd users = %v, want ci and agents-4", users)
	}
	if c := e.concern(t, nodeA, reconciler.Placement); !c.InSync {
		t.Errorf("with a pull password: %+v", c)
	}
	if m := e.store.RegistryConfigPlacement().Missing("", nil); !slices.Contains(m, nodeA) {
		t.Error("config not reported placed")
	}
}
