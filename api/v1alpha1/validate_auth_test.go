package v1alpha1

import (
	"strings"
	"testing"
	"time"
)

// withAuth turns auth on in a defaulted sample and defaults again.
func withAuth(r *Registry, users ...HtpasswdUser) {
	r.Spec.Auth = &AuthSpec{Htpasswd: &HtpasswdSpec{Users: users}}
	Default(r)
}

func TestAuthDefaults(t *testing.T) {
	r := sample(t)
	Default(r)
	if r.Spec.AuthEnabled() || r.Spec.CredentialsEnabled() || r.Spec.PullCredentials != nil {
		t.Fatal("auth is opt-in: the sample has none")
	}
	withAuth(r, HtpasswdUser{Name: "ci", PasswordFile: "/etc/registry-operator/secrets/ci.password"})
	h := r.Spec.Auth.Htpasswd
	if h.PullUser != DefaultPullUser || h.PullPasswordRotation.Duration != DefaultPullRotation || h.Realm != DefaultAuthRealm {
		t.Errorf("htpasswd defaults: %+v", h)
	}
	tgz, cfg, mesos := r.Spec.PullCredentials.Paths()
	if tgz != DefaultDockerTarGz || cfg != DefaultDockerConfig || mesos != "" {
		t.Errorf("pullCredentials defaults: %q %q %q", tgz, cfg, mesos)
	}
	if !r.Spec.CredentialsEnabled() {
		t.Error("auth with nodes turns the credentials on")
	}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatalf("auth on the sample must validate: %v", errs)
	}
	// "" turns one form off and stays off.
	off := ""
	r.Spec.PullCredentials.DockerConfig = &off
	Default(r)
	if _, cfg, _ := r.Spec.PullCredentials.Paths(); cfg != "" {
		t.Errorf(`dockerConfig "" must stay off, got %q`, cfg)
	}
}

func TestAuthRefused(t *testing.T) {
	ci := HtpasswdUser{Name: "ci", PasswordFile: "/etc/registry-operator/secrets/ci.password"}
	str := func(s string) *string { return &s }
	tests := map[string]struct {
		mutate func(r *Registry)
		path   string
		reason string
	}{
		"auth without method": {func(r *Registry) { r.Spec.Auth = &AuthSpec{} }, "spec.auth", "names no method"},
		"user name with colon": {func(r *Registry) { withAuth(r, HtpasswdUser{Name: "c:i", PasswordFile: "/p"}) },
			"spec.auth.htpasswd.users[0].name", "letters"},
		"user twice": {func(r *Registry) { withAuth(r, ci, ci) }, "spec.auth.htpasswd.users[1].name", "listed twice"},
		"user is pull user": {func(r *Registry) { withAuth(r, HtpasswdUser{Name: "agents-3", PasswordFile: "/p"}) },
			"spec.auth.htpasswd.users[0].name", "generated pull user"},
		"relative password file": {func(r *Registry) { withAuth(r, HtpasswdUser{Name: "ci", PasswordFile: "ci.password"}) },
			"spec.auth.htpasswd.users[0].passwordFile", "absolute"},
		"rotation too short": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.Auth.Htpasswd.PullPasswordRotation = D(30 * time.Second)
		}, "spec.auth.htpasswd.pullPasswordRotation", "at least 1m"},
		"pull user shell": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.Auth.Htpasswd.PullUser = "a$(id)"
		}, "spec.auth.htpasswd.pullUser", "letters"},
		"realm quote": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.Auth.Htpasswd.Realm = `a"b`
		}, "spec.auth.htpasswd.realm", "letters"},
		"auth without app": {func(r *Registry) {
			r.Spec.App = nil
			withAuth(r, ci)
		}, "spec.auth", "needs spec.app"},
		"auth with ui": {func(r *Registry) {
			on := true
			r.Spec.UI = &UISpec{Enabled: &on}
			withAuth(r, ci)
		}, "spec.ui.enabled", "cannot log in"},
		"credentials without auth": {func(r *Registry) {
			r.Spec.PullCredentials = &PullCredentialsSpec{}
			Default(r)
		}, "spec.pullCredentials", "needs spec.auth"},
		"credentials relative path": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.PullCredentials.DockerTarGz = str("docker.tar.gz")
		}, "spec.pullCredentials.dockerTarGz", "absolute"},
		"credentials shell path": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.PullCredentials.MesosDockerConfig = str("/etc/mesos;reboot")
		}, "spec.pullCredentials.mesosDockerConfig", "may only hold"},
		"credentials a directory": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.PullCredentials.DockerConfig = str("/etc")
		}, "spec.pullCredentials.dockerConfig", "must name a file"},
		"credentials same path": {func(r *Registry) {
			withAuth(r, ci)
			r.Spec.PullCredentials.DockerConfig = str(DefaultDockerTarGz)
		}, "spec.pullCredentials", "file of its own"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := sample(t)
			Default(r)
			tc.mutate(r)
			errs := Validate(r)
			if hasFieldError(errs, tc.path, tc.reason) {
				return
			}
			t.Fatalf("want an error at %s containing %q, got:\n%v", tc.path, tc.reason, errs)
		})
	}
}

func TestHostnameOnlyConstraintWarns(t *testing.T) {
	r := sample(t)
	Default(r)
	r.Spec.App.Constraints = [][]string{{"hostname", "CLUSTER", "agent-0.example"}}
	found := false
	for _, w := range Warnings(r) {
		found = found || strings.HasPrefix(w, "spec.app.constraints[0]: CLUSTER \"agent-0.example\" names a host name")
	}
	if !found {
		t.Fatalf("no warning for a host-name-only constraint: %q", Warnings(r))
	}
	r.Spec.App.Constraints = [][]string{{"hostname", "CLUSTER", "198.18.0.5"}}
	for _, w := range Warnings(r) {
		if strings.HasPrefix(w, "spec.app.constraints") {
			t.Errorf("an address constraint warns: %s", w)
		}
	}
}
